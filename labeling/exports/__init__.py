"""Gold datasets: immutable, versioned snapshots of gold labels, exported over REST and webhooks.

Layout: `models.py` (datasets, snapshots and their frozen rows, build and export jobs, webhook
endpoints and deliveries), `splits.py` (stable hash-based splits), `rows.py` (the canonical row
source; `snapshot_rows()` for Python callers such as training), `formats.py` (JSONL, CSV and spreadsheet-safe CSV,
Parquet, Label Studio writers), `redaction.py` (PII), `snapshots.py` and `jobs.py` (services),
`webhooks.py`, `tasks.py` (Celery), `api/` (DRF), `views.py` (lead pages).
"""
