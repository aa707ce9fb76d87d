"""The experiment: one outer fold end to end, and five-fold speaker-independent cross-validation over conditions.

For each fold and condition (modalities x task x adversary x placement): tune on train/validation with keras-tuner
(one resumable project per fold and condition), take the selected model, extract the frozen representation h, and attack
it with fresh attackers (gender; speaker identity; membership identification from the model's outputs). Each finished
(condition, fold) is written atomically as JSON, so an interrupted run resumes without redoing it.

Modules, in the order data flows through them: ``config`` (what defines a run), ``plan`` (corpus, folds, conditions,
``--dry-run``), ``inputs`` (features, labels, targets), ``fold`` (search one (condition, fold)), ``evaluate`` (a network's
outputs, trial records, privacy figures), ``workers`` (worker processes), ``protocol`` (cross-validation, reference,
tables, manifest), ``reporting`` (tables and plots), ``reference`` (the linear reference), ``manifest``, ``distributed``
(the search on keras-tuner's chief/worker engine). Importing this package does not import TensorFlow.
"""

from privemo.experiment.config import (
    ATTACK_EPOCHS,
    BATCH_SIZE,
    DEFAULT_MODALITIES,
    EPOCHS,
    GENDER_IDS,
    LEARNING_RATE,
    MI_HOLDOUT,
    MODALITY_SETS,
    PATIENCE,
    Condition,
    ExperimentConfig,
    fold_seed,
    result_path,
    run_settings,
    work_dir,
)
from privemo.experiment.fold import run_fold, search_setup
from privemo.experiment.inputs import CorpusData, SearchSetup, holdout_rows, lexical_inputs, prepare_corpus
from privemo.experiment.plan import describe_plan, plan_run
from privemo.experiment.protocol import CrossValidation, linear_reference_frame, run, run_cross_validation
from privemo.experiment.workers import network_key

__all__ = [
    "ATTACK_EPOCHS", "BATCH_SIZE", "DEFAULT_MODALITIES", "EPOCHS", "GENDER_IDS", "LEARNING_RATE", "MI_HOLDOUT",
    "MODALITY_SETS", "PATIENCE", "Condition", "CorpusData", "CrossValidation", "ExperimentConfig", "SearchSetup",
    "describe_plan", "fold_seed", "holdout_rows", "lexical_inputs", "linear_reference_frame", "network_key", "plan_run",
    "prepare_corpus", "result_path", "run", "run_cross_validation", "run_fold", "run_settings", "search_setup",
    "work_dir",
]
