from django.apps import AppConfig


class FollowupsConfig(AppConfig):
    name = "followups"

    def ready(self):
        from followups import tasks
        from nps_platform.settings_tabs import register_settings_tab
        from responses import events

        register_settings_tab("playbooks", "Playbooks & assignment", "followup_settings:playbooks")

        def open_on_record(sender, organization_id, created_ids, updated_ids, **kwargs):
            # Sent on commit: only enqueue. The task is idempotent per response.
            ids = [*created_ids, *updated_ids]
            for start in range(0, len(ids), 200):
                tasks.open_followups.delay(organization_id, ids[start : start + 200])

        events.response_recorded.connect(open_on_record, dispatch_uid="followups.open", weak=False)

    def seed_demo(self, *, organization, stdout):
        from followups.demo import seed_followups

        seed_followups(organization=organization, stdout=stdout)
