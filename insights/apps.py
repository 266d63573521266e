from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"

    def ready(self):
        import threading

        from django.db import transaction
        from django.db.models.signals import post_delete
        from django.utils import timezone
        from django_scopes import scope

        from accounts.models import Account, Contact
        from followups import events as followup_events
        from insights import services, tasks
        from responses import events
        from responses.models import Response
        from surveys import events as survey_events
        from surveys.models import Invitation

        def rollup_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            # Sent on commit: only enqueue. Recomputing a day is idempotent.
            ids = [*created_ids, *updated_ids]
            for start in range(0, len(ids), 1000):
                tasks.rollup_responses.delay(organization_id, ids[start : start + 1000])

        pending = threading.local()

        def flush_pending():
            batch, pending.ids, pending.flush = getattr(pending, "ids", {}), {}, None
            for (organization_id, kind), ids in batch.items():
                ids = sorted(ids)
                if kind == "invitation_days":
                    # The days of deleted invitations, as ISO dates.
                    tasks.rollup_invitations.delay(organization_id, days=ids)
                    continue
                if kind != "response":
                    # Found once per transaction, however many contacts or accounts went
                    # (on commit the request's scope may be gone: enter the tenant's).
                    with scope(organization=organization_id):
                        ids = services.responses_counted_for(organization_id, **{kind: ids})
                for start in range(0, len(ids), 1000):
                    tasks.rollup_responses.delay(organization_id, ids[start : start + 1000])

        def recount_on_commit(organization_id, kind, pk):
            # One flush per transaction, however many rows it deletes (an erasure, a
            # cascade): the ids are batched into tasks on commit. A flush that was rolled
            # back (or already ran) is no longer waiting, so the next change plans another.
            if not hasattr(pending, "ids"):
                pending.ids = {}
            pending.ids.setdefault((organization_id, kind), set()).add(pk)
            flush = getattr(pending, "flush", None)
            waiting = transaction.get_connection().run_on_commit
            if flush is None or not any(entry[1] is flush for entry in waiting):

                def flush():
                    flush_pending()

                pending.flush = flush
                transaction.on_commit(flush)

        def rollup_on_delete(sender, instance, **kwargs):
            recount_on_commit(instance.organization_id, "response", instance.pk)

        def rollup_on_contact_delete(sender, instance, **kwargs):
            # The answers stay, without the contact (an erasure): each becomes its own
            # respondent in the account figures.
            recount_on_commit(instance.organization_id, "contacts", instance.pk)

        def rollup_on_account_delete(sender, instance, **kwargs):
            recount_on_commit(instance.organization_id, "accounts", instance.pk)

        def rollup_on_invitation_delete(sender, instance, **kwargs):
            # Only an invitation that went out is counted (on the day it was sent).
            if instance.sent_at is not None:
                day = timezone.localdate(instance.sent_at).isoformat()
                recount_on_commit(instance.organization_id, "invitation_days", day)

        def rollup_on_invitations(sender, organization_id, invitation_ids, **kwargs):
            # Sent on commit: only enqueue. Recounting a day is idempotent.
            for start in range(0, len(invitation_ids), 1000):
                tasks.rollup_invitations.delay(
                    organization_id, invitation_ids[start : start + 1000]
                )

        def rollup_on_themes(sender, organization_id, response_ids, **kwargs):
            # Sent inside the analysis's transaction (in the tenant's scope): recount the
            # theme days there, so the rollup commits with the themes it counts.
            services.rollup_themes(organization_id, response_ids)

        def rollup_on_loop(sender, organization_id, followup_ids, **kwargs):
            for start in range(0, len(followup_ids), 1000):
                tasks.rollup_followups.delay(organization_id, followup_ids[start : start + 1000])

        events.response_recorded.connect(
            rollup_on_record, dispatch_uid="insights.rollup", weak=False
        )
        events.response_themes_changed.connect(
            rollup_on_themes, dispatch_uid="insights.rollup_themes", weak=False
        )
        followup_events.loop_changed.connect(
            rollup_on_loop, dispatch_uid="insights.rollup_followups", weak=False
        )
        survey_events.invitations_changed.connect(
            rollup_on_invitations, dispatch_uid="insights.rollup_invitations", weak=False
        )
        post_delete.connect(
            rollup_on_invitation_delete,
            sender=Invitation,
            dispatch_uid="insights.rollup_invitation_delete",
            weak=False,
        )
        post_delete.connect(
            rollup_on_delete, sender=Response, dispatch_uid="insights.rollup_delete", weak=False
        )
        post_delete.connect(
            rollup_on_contact_delete,
            sender=Contact,
            dispatch_uid="insights.rollup_contact_delete",
            weak=False,
        )
        post_delete.connect(
            rollup_on_account_delete,
            sender=Account,
            dispatch_uid="insights.rollup_account_delete",
            weak=False,
        )

    def seed_demo(self, *, organization, stdout):
        """The demo's responses are in place (apps seed in order): count them exactly."""
        from insights import services

        rows = services.rollup_rebuild(organization.pk)
        stdout.write(f"  insights: {rows} daily rollup rows")
