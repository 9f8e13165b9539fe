"""``python -m scorelid``: the command line."""

import sys

from scorelid.cli import main

if __name__ == "__main__":
    sys.exit(main())
