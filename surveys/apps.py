from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"

    def ready(self):
        from anymail.signals import tracking

        from responses import events, references
        from surveys import selectors, tasks
        from surveys.tracking import tracking_received

        # A response's survey_id and invitation_id are ids into this app: it checks them.
        references.references_checker_register(selectors.response_references_check)

        # The ESP's tracking webhook (anymail) moves invitations on and suppresses contacts.
        tracking.connect(tracking_received, dispatch_uid="surveys.tracking_received")

        def answered_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            # Sent on commit: enqueue only; the task marks the invitations the responses
            # answered (those without an invitation_id are skipped there).
            response_ids = [*created_ids, *updated_ids]
            if response_ids:
                tasks.mark_answered.delay(organization_id, response_ids)

        events.response_recorded.connect(
            answered_on_record, dispatch_uid="surveys.answered", weak=False
        )

    def seed_demo(self, *, organization, stdout):
        from surveys.demo import seed_surveys

        seed_surveys(organization=organization, stdout=stdout)
