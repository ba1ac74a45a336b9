from django.db import migrations

from reviewapp.db import append_only


class Migration(migrations.Migration):
    dependencies = [("reviewapp", "0001_initial")]

    operations = [append_only("reviewapp_auditevent")]
