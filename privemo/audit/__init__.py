"""``python -m privemo.audit``: a privacy audit of any speech representation, and of privemo's encoder as it ships.

Two ways in: a features file of representations h with speaker and gender (`privemo.audit.inputs.read_features`;
from any framework), or a privemo encoder and a corpus, encoded exactly as ``privemo.encode`` does in deployment
(`privemo.audit.encoder`). The attacks are the experiment's own functions, run on speaker-disjoint folds
(`privemo.audit.run`):

- gender: fresh attackers (`privemo.privacy.attribute.attack_representation`) trained on the training speakers,
  tuned on the validation speakers, selected by validation log-loss, refit, scored (UAR) on the test speakers with a
  speaker-level bootstrap interval. The fast default set is logistic regression, gradient-boosted trees and an RBF SVM
  (the SVM only while the attackers' training set is at most `FAST_SVM_MAX_TRAIN` utterances); ``--attackers full``
  adds the paper's MLP grid and always runs the SVM.
- linkability: speaker verification (`privemo.privacy.verification.speaker_verification_attack`): a verifier learnt
  on the training speakers, EER over pairs of test-speaker utterances, all pairs and same-gender pairs, speaker-level
  intervals; n/a with the reason of `verification_support` where a fold cannot support it.
- utility: an emotion probe (logistic regression, the same attack function) per labelled task.
- membership inference needs the whole network's emotion outputs: n/a for a bare encoder or a features file.

The report (`privemo.audit.report`): ``report.md``, a self-contained ``report.html``, ``report.json`` and PNGs.
``--compare A B`` audits two representations of the same utterances on the same folds and gives per metric the paired
differences and the verdict of the claims table (`privemo.experiment.claims.paired_verdict`).
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("encoder", "inputs", "report", "run")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    "Representation": "privemo.audit.inputs",
    "read_features": "privemo.audit.inputs",
    "write_features": "privemo.audit.inputs",
    "representation_from_arrays": "privemo.audit.inputs",
    "audit_representation": "privemo.audit.run",
    "compare_representations": "privemo.audit.run",
    "encode_corpus": "privemo.audit.encoder",
    "load_encoder_safe": "privemo.audit.encoder",
    "write_report": "privemo.audit.report",
    "FAST_SVM_MAX_TRAIN": "privemo.audit.run",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
