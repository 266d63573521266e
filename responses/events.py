"""Events responses/ sends. It imports no app that listens: followups/, the webhook sender
and the analysis subscribe in their AppConfig.ready() and only enqueue Celery tasks there.

- `response_recorded(organization_id, created_ids, updated_ids, historical_ids=[])`: sent
  once per committed batch recorded by services.responses_record (or edited by
  response_update), from the `responses.announce` task: the recording request publishes
  that one message, and the receivers enqueue their tasks from the worker (in-process
  mode runs it at once). `historical_ids` (a subset of the other two, possibly absent) are
  imported answers older than settings.IMPORT_FOLLOWUP_MAX_AGE_DAYS: history, kept and
  analysed, but a receiver that acts on a fresh answer (a follow-up, a Slack alert) skips
  them.
- `response_themes_changed(organization_id, response_ids)`: sent by the analysis
  (responses.analysis.responses_analyze) inside the transaction that (re)wrote these
  responses' themes, so a receiver that counts them (insights' theme rollup) writes its
  count in that same transaction: both commit together or not at all, and no task or
  on-commit callback is added to the analysis.
"""

from django.dispatch import Signal

response_recorded = Signal()
response_themes_changed = Signal()
