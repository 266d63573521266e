"""A covering index for the dashboard's reads of a period's responses.

The exec dashboard reads, per organization and date range, each response's id, account,
contact and score (account-level scores, loop health, themes). With those columns in the
index, PostgreSQL answers from the index alone instead of scanning the table. SQLite has
no INCLUDE clause and keeps the plain (organization, submitted_at) index.

Raw SQL without model state: the index is a storage detail of PostgreSQL, not a field
or Meta option the models describe.
"""

from django.db import migrations

INDEX = "responses_response_org_submitted_cover"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON responses_response "
            "(organization_id, submitted_at) INCLUDE (id, account_id, contact_id, score)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("responses", "0003_webhookendpoint_payload_format")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
