"""Invitation events for apps that depend on this one.

`invitations_changed(organization_id, invitation_ids)` is sent once per committed
transaction that changed what the response rate reads of some invitations (sent, lost to a
bounce or a failure, answered; not delivered or opened, which change nothing it reads):
the ids of all of them, for insights to recount. A deleted invitation sends nothing:
Django's post_delete says so.
"""

import threading

from django.db import transaction
from django.dispatch import Signal

invitations_changed = Signal()  # kwargs: organization_id, invitation_ids

_pending = threading.local()


def invitations_changed_on_commit(organization_id: int, invitation_ids) -> None:
    """Sends `invitations_changed` for these invitations when the transaction commits,
    batched: one signal per organization and transaction, however many changes it makes. A
    flush that was rolled back (or already ran) is no longer waiting, so the next change
    plans another."""
    ids = getattr(_pending, "ids", None)
    if ids is None:
        ids = _pending.ids = {}
    ids.setdefault(organization_id, set()).update(invitation_ids)
    flush = getattr(_pending, "flush", None)
    waiting = transaction.get_connection().run_on_commit
    if flush is None or not any(entry[1] is flush for entry in waiting):

        def flush():
            batch, _pending.ids, _pending.flush = _pending.ids, {}, None
            for org_id, invitations in batch.items():
                invitations_changed.send(
                    sender=invitations_changed,
                    organization_id=org_id,
                    invitation_ids=sorted(invitations),
                )

        _pending.flush = flush
        transaction.on_commit(flush)
