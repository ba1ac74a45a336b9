"""Database-level guarantees that do not depend on application code behaving."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, migrations

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
        sql=REFUSE_CHANGES_FUNCTION + f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION reviewapp_refuse_change();",
        reverse_sql=f"DROP TRIGGER IF EXISTS {trigger} ON {table};",
    )


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows into `table` on Django's connection (so inside the caller's transaction).

    Values are written in COPY text format by psycopg's C code; JSON columns take JSON strings,
    array columns their '{…}' text form.
    """
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def stage_table(name: str, columns_sql: str) -> None:
    """An empty per-connection temporary table for set-based writes; call inside a transaction.

    Created once per connection and emptied on every call (a test transaction never commits,
    so ON COMMIT DELETE ROWS alone would leave rows from the previous call).
    """
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns_sql}) ON COMMIT DELETE ROWS")
        cursor.execute(f"TRUNCATE {name}")


def db_now() -> datetime:
    """The database clock. Leases and windows compare against it, so clock skew between web and
    worker machines cannot matter. statement_timestamp(), not now(): the time of this statement even
    inside a long transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]
