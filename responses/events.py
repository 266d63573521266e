"""Events responses/ sends. It imports no app that listens: followups/, the webhook sender
and the analysis subscribe in their AppConfig.ready() and only enqueue Celery tasks there.

- `response_recorded(organization_id, created_ids, updated_ids)`: sent on commit, once per
  batch recorded by services.responses_record (or edited by response_update).
"""

from django.dispatch import Signal

response_recorded = Signal()
