"""Loop health's overdue count groups the open detractor follow-ups by outcome: on
PostgreSQL the partial covering index of open follow-ups now holds the outcome too, so the
count reads the index alone instead of visiting each row."""

from django.db import migrations

OLD = (
    "insights_loopfollowup (organization_id, submitted_at) INCLUDE (due_at, survey_id, "
    "channel) WHERE score <= 6 AND status IN ('new', 'in_progress', 'waiting')"
)
NEW = (
    "insights_loopfollowup (organization_id, submitted_at) INCLUDE (due_at, outcome, "
    "survey_id, channel) WHERE score <= 6 AND status IN ('new', 'in_progress', 'waiting')"
)


def _recreate(definition):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute("DROP INDEX IF EXISTS loop_followup_open")
            schema_editor.execute(f"CREATE INDEX loop_followup_open ON {definition}")

    return run


class Migration(migrations.Migration):
    dependencies = [("insights", "0004_loop_and_theme_rollups")]

    operations = [migrations.RunPython(_recreate(NEW), _recreate(OLD), elidable=False)]
