"""The experiment: one outer fold end to end, and five-fold speaker-independent cross-validation over conditions.

For each fold and condition (modalities x task x adversary x placement): tune on train/validation with keras-tuner
(one resumable project per fold and condition), take the selected model, extract the frozen representation h, and attack
it with fresh attackers (gender; speaker identity; membership identification from the model's outputs). Each finished
(condition, fold) is written atomically as JSON, so an interrupted run resumes without redoing it.

Modules, in the order data flows through them: ``config`` (what defines a run), ``plan`` (corpus, folds, conditions,
``--dry-run``), ``inputs`` (features, labels, targets), ``fold`` (search one (condition, fold)), ``evaluate`` (a network's
outputs, trial records, privacy figures), ``workers`` (worker processes), ``protocol`` (cross-validation, reference,
tables, manifest), ``reporting`` (tables and plots), ``reference`` (the linear reference), ``manifest``, ``distributed``
(the search on keras-tuner's chief/worker engine). The public names are re-exported here lazily: importing this
package imports none of its modules (nor TensorFlow).
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("claims", "config", "cost", "cost_calibration", "cost_fitting", "cost_measurement", "distributed",
               "distributed_chief", "distributed_client", "distributed_oracle", "distributed_plan",
               "distributed_servicer", "distributed_worker", "evaluate", "fold", "inputs", "manifest", "plan",
               "protocol", "reference", "reference_cv", "reference_features", "reporting", "workers")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys((
        "ATTACK_EPOCHS", "BATCH_SIZE", "DEFAULT_MODALITIES", "EPOCHS", "GENDER_IDS", "LEARNING_RATE", "MI_HOLDOUT",
        "MODALITY_SETS", "PATIENCE", "Condition", "ExperimentConfig", "fold_seed", "result_path", "run_settings",
        "work_dir",
    ), "privemo.experiment.config"),
    **dict.fromkeys(("run_fold", "search_setup"), "privemo.experiment.fold"),
    **dict.fromkeys(("CorpusData", "SearchSetup", "holdout_rows", "lexical_inputs", "prepare_corpus"),
                    "privemo.experiment.inputs"),
    **dict.fromkeys(("describe_plan", "plan_run"), "privemo.experiment.plan"),
    **dict.fromkeys(("CrossValidation", "linear_reference_frame", "run", "run_cross_validation"),
                    "privemo.experiment.protocol"),
    **dict.fromkeys(("network_key",), "privemo.experiment.workers"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
