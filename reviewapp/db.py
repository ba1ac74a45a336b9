"""Database-level guarantees that do not depend on application code behaving."""

from __future__ import annotations

from django.db import migrations

REFUSE_CHANGES_FUNCTION = """
CREATE OR REPLACE FUNCTION reviewapp_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: rows are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def append_only(table: str) -> migrations.RunSQL:
    """A migration operation that makes `table` refuse UPDATE and DELETE, for every client.

    TRUNCATE stays possible for the database owner (test-database flushes use it); production
    roles should not hold TRUNCATE on these tables.
    """
    trigger = f"{table}_append_only"
    return migrations.RunSQL(
        sql=REFUSE_CHANGES_FUNCTION
        + f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION reviewapp_refuse_change();",
        reverse_sql=f"DROP TRIGGER IF EXISTS {trigger} ON {table};",
    )
