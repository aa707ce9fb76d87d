"""What a representation still gives away: fresh attribute attackers, speaker verification and membership inference.

Every privacy figure privemo reports comes from an attack run after the emotion model is frozen, on plain NumPy arrays:

- `privemo.privacy.attribute`: attribute attacks (gender, speaker identity) by attackers trained afresh on h -- the
  protocol, `attack_representation`, `speaker_attack`, `AttackReport`;
- `privemo.privacy.attackers`: the attacker families by name (`ATTACKERS`): the paper's MLP
  (`privemo.privacy.mlp_attacker`) and logistic regression, RBF SVM and gradient-boosted trees
  (`privemo.privacy.sklearn_attacker`), all scikit-learn classifiers;
- `privemo.privacy.membership`: membership identification from the model's output probabilities;
- `privemo.privacy.verification`: linkage of unseen speakers (speaker verification, EER).

The public names are re-exported here lazily: ``import privemo.privacy`` imports none of them (nor scikit-learn or
TensorFlow) until one is used.
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("attackers", "attribute", "checks", "grids", "membership", "mlp_attacker", "sklearn_attacker",
               "verification")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("MLPAttacker", "train_attacker", "ATTACKER_LEARNING_RATE", "ATTACKER_BATCH_SIZE",
                     "ATTACKER_MAX_EPOCHS", "ATTACKER_PATIENCE"), "privemo.privacy.mlp_attacker"),
    **dict.fromkeys(("SklearnAttacker", "train_logreg_attacker", "train_svm_attacker", "train_hgb_attacker",
                     "LOGREG_CS", "SVM_CS", "SVM_GAMMA_SCALES", "SVM_MAX_TRAIN", "HGB_PARAMS"),
                    "privemo.privacy.sklearn_attacker"),
    **dict.fromkeys(("ATTACKERS", "DEFAULT_ATTACKERS"), "privemo.privacy.attackers"),
    **dict.fromkeys(("ATTACKER_GRID", "ATTACKER_GRIDS", "QUICK_ATTACKER_GRID"), "privemo.privacy.grids"),
    **dict.fromkeys(("AttackReport", "attack_representation", "speaker_attack", "split_by_speaker", "bootstrap_uar_ci",
                     "SPEAKER_SPLIT", "BOOTSTRAP_RESAMPLES", "PROBA_CLIP"), "privemo.privacy.attribute"),
    **dict.fromkeys(("MIReport", "membership_attack", "membership_inference", "holdout_split", "MI_CLASSIFIER_C",
                     "MI_LOW_FPR", "HOLDOUT_SHARE"), "privemo.privacy.membership"),
    **dict.fromkeys(("speaker_verification_attack", "equal_error_rate", "MAX_TRIALS"), "privemo.privacy.verification"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
