"""`python -m tools.stack COMMAND`: see tools/stack/cli.py."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
