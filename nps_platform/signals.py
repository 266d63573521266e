"""A signal sent once per committed transaction, for the rollups other apps keep.

Apps that change what a rollup reads (follow-ups, invitations) tell it which rows changed
through a signal. Sent row by row, a batch of a thousand changes would queue a thousand
recounts; `OnCommitBatch` gathers a transaction's ids per organization and sends one
signal per organization when the transaction commits.
"""

import threading

from django.db import transaction
from django.dispatch import Signal


class OnCommitBatch:
    """`add(organization_id, ids)` during a transaction; on commit, `signal` is sent once
    per organization with `ids_name=[the sorted ids]`. A flush that was rolled back (or
    already ran) is no longer waiting, so the next change plans another."""

    def __init__(self, signal: Signal, ids_name: str):
        self.signal = signal
        self.ids_name = ids_name
        self._pending = threading.local()

    def add(self, organization_id: int, ids) -> None:
        pending = self._pending
        waiting_ids = getattr(pending, "ids", None)
        if waiting_ids is None:
            waiting_ids = pending.ids = {}
        waiting_ids.setdefault(organization_id, set()).update(ids)
        flush = getattr(pending, "flush", None)
        waiting = transaction.get_connection().run_on_commit
        if flush is None or not any(entry[1] is flush for entry in waiting):

            def flush():
                batch, pending.ids, pending.flush = pending.ids, {}, None
                for org_id, changed in batch.items():
                    self.signal.send(
                        sender=self.signal,
                        organization_id=org_id,
                        **{self.ids_name: sorted(changed)},
                    )

            pending.flush = flush
            transaction.on_commit(flush)
