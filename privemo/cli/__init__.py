"""The commands: ``python -m privemo.reproduce``, ``python -m privemo.export`` and ``python -m privemo.distributed``."""
