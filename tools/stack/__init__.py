"""The local service stack (PostgreSQL, Redis, web, Celery) for development, tests and benchmarks.

Standard library only, and outside the Django apps, so `python -m tools.stack stop` works without
the virtualenv and nothing here needs Django importable or configured. Modules by topic:
`common` (paths under .run/, errors, output, ports, processes), `postgres`, `redis`,
`supervise` (`run`'s children and signals), `cli` (the commands run, test, services, stop).
"""
