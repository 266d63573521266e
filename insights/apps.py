from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"

    def ready(self):
        import threading

        from django.db import transaction
        from django.db.models.signals import post_delete

        from insights import tasks
        from responses import events
        from responses.models import Response

        def rollup_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            # Sent on commit: only enqueue. Recomputing a day is idempotent.
            ids = [*created_ids, *updated_ids]
            for start in range(0, len(ids), 1000):
                tasks.rollup_responses.delay(organization_id, ids[start : start + 1000])

        pending = threading.local()

        def flush_deleted():
            batch, pending.ids = getattr(pending, "ids", {}), {}
            for organization_id, ids in batch.items():
                ids = sorted(ids)
                for start in range(0, len(ids), 1000):
                    tasks.rollup_responses.delay(organization_id, ids[start : start + 1000])

        def rollup_on_delete(sender, instance, **kwargs):
            # One flush per transaction, however many answers it deletes (an erasure, a
            # cascade): the ids are batched into tasks on commit.
            if not hasattr(pending, "ids"):
                pending.ids = {}
            pending.ids.setdefault(instance.organization_id, set()).add(instance.pk)
            waiting = transaction.get_connection().run_on_commit
            if not any(entry[1] is flush_deleted for entry in waiting):
                transaction.on_commit(flush_deleted)

        events.response_recorded.connect(
            rollup_on_record, dispatch_uid="insights.rollup", weak=False
        )
        post_delete.connect(
            rollup_on_delete, sender=Response, dispatch_uid="insights.rollup_delete", weak=False
        )

    def seed_demo(self, *, organization, stdout):
        """The demo's responses are in place (apps seed in order): count them exactly."""
        from insights import services

        rows = services.rollup_rebuild(organization.pk)
        stdout.write(f"  insights: {rows} daily rollup rows")
