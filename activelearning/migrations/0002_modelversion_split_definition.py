"""Store on every model version the split definition it was trained with.

Versions registered before this migration were split by a hash of each item's upstream identity
("source\x1fexternal_id") with the salt and fractions then in settings, so that is what they get:
the legacy `item-id-sha256` rule, no content key. New versions always store their own definition
(the fields have no default).
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("activelearning", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="split_rule",
            field=models.CharField(
                default="item-id-sha256",
                help_text="content-group-sha256, or item-id-sha256 (legacy).",
                max_length=40,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="modelversion",
            name="split_salt",
            # The salt in force when the existing rows were trained (REVIEWAPP_AL_SPLIT_SALT).
            field=models.CharField(default=settings.AL_SPLIT_SALT, max_length=200),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="modelversion",
            name="split_content_key_version",
            field=models.CharField(blank=True, default="", help_text="Empty for the item-id rule.", max_length=100),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="modelversion",
            name="split_dev_fraction",
            field=models.FloatField(default=settings.AL_DEV_FRACTION),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="modelversion",
            name="split_test_fraction",
            field=models.FloatField(default=settings.AL_TEST_FRACTION),
            preserve_default=False,
        ),
    ]
