"""Item search: the indexes its filters read, pg_trgm for the text filter, and saved searches.

The content-item indexes are built CONCURRENTLY (hence atomic = False): on a deployment with
millions of items a plain CREATE INDEX would block ingest for as long as the build takes.
"""

import django.contrib.postgres.indexes
import django.db.models.deletion
import django.db.models.functions.datetime
import django.db.models.functions.text
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("reviewapp", "0007_routingoutcome_shadow"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Ships with PostgreSQL (contrib); creating it needs a superuser or, from PostgreSQL 13, a
        # database owner, since pg_trgm is a trusted extension.
        TrigramExtension(),
        migrations.CreateModel(
            name="SavedSearch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                (
                    "query",
                    models.CharField(help_text="The search page's query string, e.g. 'status=gold'.", max_length=2000),
                ),
                ("created_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="saved_searches",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["name", "id"]},
        ),
        migrations.AddConstraint(
            model_name="savedsearch",
            constraint=models.UniqueConstraint(fields=("user", "name"), name="savedsearch_unique_name"),
        ),
        AddIndexConcurrently(
            model_name="contentitem",
            index=models.Index(fields=["created_at", "id"], name="contentitem_received"),
        ),
        AddIndexConcurrently(
            model_name="contentitem",
            index=models.Index(fields=["external_id"], name="contentitem_external_id"),
        ),
        AddIndexConcurrently(
            model_name="reviewtask",
            index=models.Index(
                condition=models.Q(("status", "escalated")), fields=["policy", "item"], name="reviewtask_escalated"
            ),
        ),
        AddIndexConcurrently(
            model_name="reviewtask",
            index=models.Index(
                condition=models.Q(("decision__isnull", True)), fields=["policy", "item"], name="reviewtask_undecided"
            ),
        ),
        # Django writes this expression index as `((UPPER("text") gin_trgm_ops))`, which PostgreSQL
        # refuses; the SQL is given here and the state kept as the model declares it.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'CREATE INDEX CONCURRENTLY IF NOT EXISTS "contentitem_text_trgm" ON "reviewapp_contentitem" '
                    'USING gin ((UPPER("text")) gin_trgm_ops)',
                    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "contentitem_text_trgm"',
                )
            ],
            state_operations=[
                migrations.AddIndex(
                    model_name="contentitem",
                    index=django.contrib.postgres.indexes.GinIndex(
                        django.contrib.postgres.indexes.OpClass(
                            django.db.models.functions.text.Upper("text"), name="gin_trgm_ops"
                        ),
                        name="contentitem_text_trgm",
                    ),
                )
            ],
        ),
    ]
