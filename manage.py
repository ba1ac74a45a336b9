#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Against the instance `make run` runs, use `make manage ARGS='…'`: it gives this script that
instance's database, broker and secret key.
"""

import os
import shlex
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings: a missing variable is reported here)
    except ImproperlyConfigured as exc:
        command = shlex.join(sys.argv[1:]) or "help"
        sys.exit(f"manage.py: {exc} For the instance `make run` runs: make manage ARGS={shlex.quote(command)}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
