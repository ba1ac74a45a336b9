from django.db import migrations

from reviewapp.db import append_only


class Migration(migrations.Migration):
    dependencies = [("labeling", "0001_initial")]

    operations = [append_only("labeling_policyversion")]
