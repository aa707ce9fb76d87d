"""privemo: privacy-enhanced multimodal emotion representations (Jaiswal & Mower Provost, AAAI 2020) in Keras.

The public API is re-exported here. Names are resolved lazily so that ``import privemo`` (and the
corpus / feature layers) do not pay TensorFlow's import time until a model is actually needed. ``import privemo`` does
nothing else: ``privemo.quiet_tensorflow()`` imports TensorFlow without its start-up log (the commands call it), and
``privemo.load_model(path)`` loads a ``.keras`` file privemo wrote (it registers privemo's Keras classes first).

The commands are modules: ``python -m privemo.reproduce`` (``privemo/reproduce.py``), ``privemo.export``,
``privemo.distributed`` and ``privemo.audit``, each a thin file over ``privemo.cli``; ``pip install`` also installs them
as ``privemo-reproduce``, ``privemo-export``, ``privemo-distributed`` and ``privemo-audit``.
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

__version__ = "0.1.0"

_SUBMODULES = ("audit", "cli", "corpora", "data", "experiment", "features", "metrics", "nn", "privacy", "removal",
               "search")

# public name -> module that defines it, resolved on first use (privemo._util.lazy; one-way data flow: corpora ->
# features -> folds -> models -> attacks -> reporting)
_EXPORTS: dict[str, str] = {
    "load_corpus": "privemo.corpora.loading",
    "CORPORA": "privemo.corpora.loading",
    "CorpusFormatError": "privemo.corpora._schema",
    "bin_labels": "privemo.data.labels",
    "equal_frequency_thresholds": "privemo.data.labels",
    "speaker_folds": "privemo.data.folds",
    "log_mfb": "privemo.features.logmel",
    "tokenize": "privemo.features.lexical",
    "uar": "privemo.metrics",
    "GradientReversal": "privemo.nn.layers",
    "build_model": "privemo.nn.models",
    "representation_model": "privemo.nn.models",
    "PAPER_GRID": "privemo.search.grids",
    "ATTACKER_GRID": "privemo.privacy.grids",
    "train_attacker": "privemo.privacy.mlp_attacker",
    "attack_representation": "privemo.privacy.attribute",
    "speaker_attack": "privemo.privacy.attribute",
    "membership_attack": "privemo.privacy.membership",
    "membership_inference": "privemo.privacy.membership",
    "holdout_split": "privemo.privacy.membership",
    "speaker_verification_attack": "privemo.privacy.verification",
    "LeaceEraser": "privemo.removal.leace",
    "encode": "privemo.nn.encoder",
    "utterance_statistics": "privemo.experiment.reference",
    "linear_reference": "privemo.experiment.reference",
    "gender_reference": "privemo.experiment.reference",
    "reference_table": "privemo.experiment.reference",
    "reference_frame": "privemo.experiment.reference",
    "load_model": "privemo.removal.saving",
    "quiet_tensorflow": "privemo._util.quiet",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
