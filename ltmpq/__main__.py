"""``python -m ltmpq``."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a worker process re-imports it
    sys.exit(main())
