"""``python -m privemo.reproduce``: Table 1a/1b of the paper, end to end. The command is ``privemo.cli.reproduce``."""

import sys

from privemo.cli.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
