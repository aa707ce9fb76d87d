"""``python -m privemo.export``: a trained network's encoder as a stand-alone .keras file. The command is ``privemo.cli.export``."""

import sys

from privemo.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
