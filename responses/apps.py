from django.apps import AppConfig


class ResponsesConfig(AppConfig):
    name = "responses"

    def ready(self):
        from nps_platform.settings_tabs import register_settings_tab
        from responses import events, imports, tasks

        register_settings_tab("webhooks", "Webhooks", "response_settings:webhooks")
        register_settings_tab("slack", "Slack alerts", "response_settings:slack")
        register_settings_tab("themes", "Comment themes", "response_settings:themes")
        imports.register()  # the "responses" CSV import kind (accounts/import_kinds.py)

        def analyze_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            # The event is sent on commit: enqueue only, the worker does the work.
            tasks.analyze_responses.delay(organization_id, [*created_ids, *updated_ids])

        def webhooks_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            tasks.webhooks_fan_out.delay(organization_id, list(created_ids), list(updated_ids))

        def slack_on_record(sender, organization_id, created_ids, **kwargs):
            # An imported answer from months ago is history, not news: no alert.
            history = set(kwargs.get("historical_ids") or ())
            fresh = [i for i in created_ids if i not in history]
            if fresh:
                tasks.queue_slack_alerts.delay(organization_id, fresh)

        events.response_recorded.connect(
            analyze_on_record, dispatch_uid="responses.analyze", weak=False
        )
        events.response_recorded.connect(
            webhooks_on_record, dispatch_uid="responses.webhooks", weak=False
        )
        events.response_recorded.connect(
            slack_on_record, dispatch_uid="responses.slack", weak=False
        )

        from accounts import events as account_events
        from responses import panels, privacy

        def forget_contact(sender, organization, contact, **kwargs):
            privacy.contact_responses_erase(organization=organization, contact=contact)

        account_events.contact_erasing.connect(
            forget_contact, dispatch_uid="responses.forget_contact", weak=False
        )
        account_events.register_personal_data_exporter(
            "responses", privacy.contact_responses_export
        )
        account_events.register_account_panel(panels.account_nps_panel)

    def seed_demo(self, *, organization, stdout):
        from django.conf import settings

        from responses.demo import seed_responses

        seed_responses(organization=organization, stdout=stdout, target=settings.DEMO_RESPONSES)
