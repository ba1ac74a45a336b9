"""ReviewTask.last_leased_by: who held the most recent lease, so only they may answer late.

Backfilled for open tasks from the live lease, else from the task's latest `task.claimed` audit
event (the claim's own record), so answers in flight when this is deployed are still accepted.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

BACKFILL = """
UPDATE reviewapp_reviewtask t
   SET last_leased_by_id = COALESCE(
       t.leased_by_id,
       (SELECT e.actor_id FROM reviewapp_auditevent e
         WHERE e.object_type = 'task' AND e.object_id = t.id::text AND e.action = 'task.claimed'
           AND EXISTS (SELECT 1 FROM auth_user u WHERE u.id = e.actor_id)
         ORDER BY e.occurred_at DESC, e.id DESC
         LIMIT 1))
 WHERE t.status = 'open'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reviewapp", "0005_ingest_jobs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewtask",
            name="last_leased_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Who held the most recent lease on this task.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop, elidable=True),
    ]
