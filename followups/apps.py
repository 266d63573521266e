from django.apps import AppConfig

# Responses per followups.open task: a recorded batch of 1,000 is opened by two tasks that
# two worker processes run side by side; each task reads the organization's context once.
OPEN_CHUNK = 500


class FollowupsConfig(AppConfig):
    name = "followups"

    def ready(self):
        from followups import tasks
        from nps_platform.settings_tabs import register_settings_tab
        from responses import events

        register_settings_tab("playbooks", "Playbooks & assignment", "followup_settings:playbooks")

        def open_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            # Sent on commit: only enqueue. The task is idempotent per response.
            history = set(kwargs.get("historical_ids") or ())  # old imported answers: no follow-up
            ids = [i for i in (*created_ids, *updated_ids) if i not in history]
            for start in range(0, len(ids), OPEN_CHUNK):
                tasks.open_followups.delay(organization_id, ids[start : start + OPEN_CHUNK])

        events.response_recorded.connect(open_on_record, dispatch_uid="followups.open", weak=False)

        from accounts import events as account_events
        from followups import panels, privacy

        def forget_contact(sender, organization, contact, **kwargs):
            privacy.contact_followups_erase(organization=organization, contact=contact)

        account_events.contact_erasing.connect(
            forget_contact, dispatch_uid="followups.forget_contact", weak=False
        )
        account_events.register_personal_data_exporter(
            "followups", privacy.contact_followups_export
        )
        events.register_response_panel(panels.response_followup_panel)

    def seed_demo(self, *, organization, stdout):
        from followups.demo import seed_followups

        seed_followups(organization=organization, stdout=stdout)
