"""Each benchmark works in a database of its own, on the server that DATABASE_URL names.

Imported by the scripts beside it (`from _db import …`: a script's folder is on sys.path);
the leading underscore keeps `make bench` from running it.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def bench_database_url(suffix: str) -> str:
    """DATABASE_URL with `_<suffix>` appended to the database name."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path=url.path.rstrip("/") + f"_{suffix}"))


def recreate_database(url: str) -> None:
    """Drop (disconnecting its sessions) and create the database `url` names."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
