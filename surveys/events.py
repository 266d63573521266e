"""Invitation events for apps that depend on this one.

`invitations_changed(organization_id, invitation_ids)` is sent once per committed
transaction that changed what the response rate reads of some invitations (sent, lost to a
bounce or a failure, answered; not delivered or opened, which change nothing it reads):
the ids of all of them, for insights to recount. A deleted invitation sends nothing:
Django's post_delete says so.
"""

from django.dispatch import Signal

from nps_platform.signals import OnCommitBatch

invitations_changed = Signal()  # kwargs: organization_id, invitation_ids

_batch = OnCommitBatch(invitations_changed, "invitation_ids")


def invitations_changed_on_commit(organization_id: int, invitation_ids) -> None:
    """Sends `invitations_changed` for these invitations when the transaction commits,
    batched: one signal per organization and transaction, however many changes it makes."""
    _batch.add(organization_id, invitation_ids)
