"""The tuner factory: ``make_tuner`` picks and sets up the tuner of one project (one outer fold of one condition).

``make_tuner`` returns a ``GridSearch`` tuner (``privemo.search.tuning.ConcurrentGridSearch``) maximising
"val_objective" that writes its trials under ``directory/project_name``, or, with ``pack`` > 1, the packed one
(``privemo.search.packed_tuner.PackedGridSearch``). With ``overwrite=False`` a rerun reloads the project and skips
finished trials (one project per outer fold and condition: keras-tuner has no cross-validation).

The tuners call the HyperModel's ``build`` and ``fit`` only; the factory hands them what else they use, explicitly:
the hypermodel's network cache (``cached_network=hypermodel.cached_model``) and its packed training
(``fit_pack=hypermodel.fit_packed``, where ``packable``).
"""

from __future__ import annotations

import keras_tuner

from privemo._util.validation import check_int as check_count
from privemo.nn.training import OBJECTIVE
from privemo.search.packed_tuner import PackedGridSearch
from privemo.search.hypermodel import EmotionPrivacyHyperModel, packable
from privemo.search.tuning import ConcurrentGridSearch, GridSearch

__all__ = ["make_tuner"]


def make_tuner(
    hypermodel: EmotionPrivacyHyperModel,
    directory: str,
    project_name: str,
    *,
    max_trials: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    pack: int = 1,
    same_shape: bool = True,
) -> GridSearch:
    """A GridSearch tuner maximising "val_objective", writing its trials under ``directory/project_name``.

    ``max_trials=None`` searches the whole grid. ``overwrite=False`` resumes an existing project: finished trials are
    reloaded, not rerun. ``pack`` > 1 trains up to that many trials (of one network shape, with ``same_shape``) at a
    time in one compiled step (``privemo.search.packed_tuner.PackedGridSearch``): the same project layout, trial ids and
    results as one at a time, so a project may be resumed with another ``pack``.
    """
    if max_trials is not None:
        check_count("max_trials", max_trials, 1, expected="None or an integer >= 1")
    tuner, extra = ConcurrentGridSearch, {"cached_network": hypermodel.cached_model}
    if check_count("pack", pack, 1) > 1:
        tuner = PackedGridSearch
        extra.update(pack=pack, same_shape=same_shape, fit_pack=hypermodel.fit_packed if packable(hypermodel) else None)
    return tuner(
        hypermodel=hypermodel,
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        max_trials=max_trials,
        seed=seed,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        **extra,
    )
