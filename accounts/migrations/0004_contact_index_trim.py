"""Contact loses two indexes that others cover: (organization) and (organization, account).

Every contact an import creates updated both; lookups by organization use the indexes that
start with it, and an account's contacts the account foreign key's index."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_importjob_kind_registry"),
        ("nps_platform", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="contact", name="accounts_co_organiz_da8604_idx"),
        migrations.AlterField(
            model_name="contact",
            name="organization",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="nps_platform.organization",
            ),
        ),
    ]
