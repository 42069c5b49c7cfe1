"""Entry point for ``python -m ruotools``."""

import sys

from ruotools.cli import main

if __name__ == "__main__":
    sys.exit(main())
