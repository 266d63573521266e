from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS contact_survey_order ON accounts_contact "
    "(organization_id, last_surveyed_at ASC NULLS FIRST, id)"
)
DROP = "DROP INDEX IF EXISTS contact_survey_order"


def create(apps, schema_editor):
    # The survey planner walks contacts in this order and stops at today's quota.
    # PostgreSQL only: SQLite cannot index NULLS FIRST, and its planner needs no help here.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
