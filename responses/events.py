"""Events responses/ sends. It imports no app that listens: followups/, the webhook sender
and the analysis subscribe in their AppConfig.ready() and only enqueue Celery tasks there.

- `response_recorded(organization_id, created_ids, updated_ids, historical_ids=[])`: sent
  from the worker for what services.responses_record recorded (or response_update
  edited), at least once, after the commit. With a Redis broker the committed batch joins
  its organization's announcement queue and `responses.announce_queued` sends one event
  for up to 1,000 ids, so one event may carry several requests' batches; in-process mode
  sends it at once (responses.tasks). Receivers only enqueue their tasks and must be
  idempotent. `historical_ids` (a subset of the other two, possibly absent) are
  imported answers older than settings.IMPORT_FOLLOWUP_MAX_AGE_DAYS: history, kept and
  analysed, but a receiver that acts on a fresh answer (a follow-up, a Slack alert) skips
  them.
- `response_themes_changed(organization_id, response_ids)`: sent by the analysis
  (responses.analysis.responses_analyze) inside the transaction that (re)wrote these
  responses' themes, so a receiver that counts them (insights' theme rollup) writes its
  count in that same transaction: both commit together or not at all, and no task or
  on-commit callback is added to the analysis.
- `register_response_panel(fn)`: fn(organization=, response=, request=) returns a dict with
  `title`, `template` and `context` for a card on the response's page (e.g. its follow-up),
  or None to add nothing. The template is rendered with the request, so the page shell's
  context (current_organization, …) is there. `request` says who is reading: show only what
  the member's role may open. Keep it to a fixed number of queries.
"""

from django.dispatch import Signal

response_recorded = Signal()
response_themes_changed = Signal()

_response_panels: list[object] = []


def register_response_panel(panel) -> None:
    if panel not in _response_panels:
        _response_panels.append(panel)


def response_panels() -> list[object]:
    return list(_response_panels)
