"""``python -m privemo.audit``: runs `privemo.cli.audit.main`."""

import sys

from privemo.cli.audit import main

if __name__ == "__main__":
    sys.exit(main())
