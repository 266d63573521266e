"""On PostgreSQL a covering index serves the daily rollup's reads of a range (headline,
trend, histogram, verbatim rate) from the index alone, instead of the organization's rows
of every day filtered by date. Raw SQL without model state, like 0003: a storage detail of
PostgreSQL."""

from django.db import migrations

COVERING = {
    "daily_score_period": (
        "insights_dailyscore (organization_id, day) INCLUDE (survey_id, channel, score, "
        "responses, with_comment)"
    ),
}


def create_covering(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, definition in COVERING.items():
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def drop_covering(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in COVERING:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("insights", "0007_account_spans")]

    operations = [migrations.RunPython(create_covering, drop_covering, elidable=False)]
