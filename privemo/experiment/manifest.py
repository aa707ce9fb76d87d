"""The run manifest: package versions, platform, seed, configuration, grids and wall time per stage."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from privemo._util.io import atomic_write_json

PACKAGES = ("privemo", "tensorflow", "keras", "keras-tuner", "librosa", "numpy", "scikit-learn", "pandas", "scipy",
            "soundfile", "gensim", "espeakng-loader", "matplotlib")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("privemo") is None:
        from privemo import __version__

        versions["privemo"] = __version__
    return versions


def devices() -> list[str]:
    """The TensorFlow devices the run saw (CPU only, or GPUs)."""
    try:
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    except Exception:  # pragma: no cover - TensorFlow missing or broken
        return []


def git_state() -> dict[str, Any]:
    """The commit privemo's source was at and whether its tree had uncommitted changes (None outside a git checkout)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", "privemo", "setup.cfg") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def write_manifest(path: str | Path, config: dict[str, Any], **sections: Any) -> Path:
    """Write manifest.json atomically: versions, platform, devices, the configuration, and any further sections."""
    manifest = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "devices": devices(),
        "versions": package_versions(),
        "git": git_state(),
        "seed": config.get("seed"),
        "config": config,
        **sections,
    }
    return atomic_write_json(path, manifest)
