"""``python -m privemo.distributed``: the reproduce command's search on keras-tuner's chief/worker engine. The command is ``privemo.cli.distributed``."""

import sys

from privemo.cli.distributed import main

if __name__ == "__main__":
    sys.exit(main())
