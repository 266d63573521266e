"""A covering index for the dashboard's reads of a period's invitations.

The response rate and coverage read, per organization and date range of sending, each
invitation's state, answer time, account, survey and channel. With those columns in the
index, PostgreSQL answers from the index alone instead of visiting the table. SQLite has
no INCLUDE clause and needs none at its sizes.

Raw SQL without model state, like responses/0004: a storage detail of PostgreSQL.
"""

from django.db import migrations

INDEX = "surveys_invitation_org_sent_cover"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON surveys_invitation "
            "(organization_id, sent_at) INCLUDE (state, answered_at, account_id, survey_id, "
            "channel)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("surveys", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
