"""Argument checks shared by every module, and the one error type a command prints as a single line.

Errors follow Keras' wording, so a bad argument reads the same wherever it is caught::

    Invalid value received for argument `folds`. Expected an integer >= 2. Received: folds=1

The checks are thin wrappers over scikit-learn's validators (``check_scalar``, ``check_array``) that keep that wording.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np


class UserError(ValueError):
    """A problem with the user's input or set-up (a path, a flag, a corpus file), not a bug in privemo.

    The commands (``python -m privemo.reproduce``, ``export``, ``distributed``) print it as one line, without a
    traceback."""


def invalid(name: str, expected: str, value: Any = None, *, received: str | None = None) -> ValueError:
    """The ValueError for argument ``name``: what was expected and what was received (``name=value`` by default)."""
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {received if received is not None else f'{name}={value!r}'}"
    )


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f">= {low}"
    return f"<= {high}" if high is not None else ""


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None, *, expected: str = "") -> int:
    """``value`` as an int, checked to be an integer (not a bool) in [low, high]."""
    from sklearn.utils import check_scalar

    expected = expected or f"an integer {_bounds(low, high)}".rstrip()
    if isinstance(value, bool):
        raise invalid(name, expected, value)
    try:
        check_scalar(value, name, Integral, min_val=low, max_val=high)
    except (TypeError, ValueError):
        raise invalid(name, expected, value) from None
    return int(value)


def _closed(low: float | None, high: float | None, low_open: bool) -> str:
    # scikit-learn's check_scalar rejects naming a boundary that is None as included
    lower = low is not None and not low_open
    if high is not None:
        return "both" if lower else "right"
    return "left" if lower else "neither"


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, expected: str = "") -> float:
    """``value`` as a finite float in [low, high] (or (low, high] with ``low_open``)."""
    from sklearn.utils import check_scalar

    expected = expected or f"a finite number {'> ' + str(low) if low_open and high is None else _bounds(low, high)}"
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)):
        raise invalid(name, expected.rstrip(), value)
    try:
        check_scalar(value, name, Real, min_val=low, max_val=high, include_boundaries=_closed(low, high, low_open))
    except (TypeError, ValueError):
        raise invalid(name, expected.rstrip(), value) from None
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise invalid(name, f"one of {choices}", value)
    return value


def check_matrix(name: str, x: Any, *, n_features: int | None = None, dtype: Any = np.float32,
                 min_samples: int = 1) -> np.ndarray:
    """A finite 2-D array (n_samples, n_features) of ``dtype``; ``n_features`` checked when given."""
    from sklearn.utils import check_array

    try:
        array = check_array(x, dtype=dtype, ensure_2d=True, ensure_all_finite=True, ensure_min_samples=min_samples)
    except (TypeError, ValueError) as exc:
        shape = getattr(np.asarray(x, dtype=object), "shape", None)
        raise invalid(name, "a finite 2-D array (n_samples, n_features)",
                      received=f"{name} of shape {shape} ({str(exc).splitlines()[0]})") from None
    if n_features is not None and array.shape[1] != n_features:
        raise invalid(name, f"{n_features} features (the fitted width)", received=f"{name}.shape={array.shape}")
    return array
