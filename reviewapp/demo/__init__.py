"""The demo: a synthetic corpus (corpus.py, plain data) and what seeds it (seeding.py), for `manage.py seed_demo`.

A package beside the app rather than inside the management command: the command stays a thin
shell over these services, and tests read the corpus without running a command.
"""
