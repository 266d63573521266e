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
"""

from django.dispatch import Signal

response_recorded = Signal()
