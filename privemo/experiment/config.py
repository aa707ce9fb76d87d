"""What defines a run: the conditions (modality x task x adversary x placement x repeat), the run's configuration and
its budget per grid, the settings a resumed run must share, and the one seed each (modality, task, fold, repeat) gets.
"""

from __future__ import annotations

import dataclasses
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from privemo._util.validation import UserError, check_choice
from privemo.removal.methods import DEFAULT_REMOVAL, RemovalMethod, removal_method
from privemo.search.grids import GRIDS


MODALITY_SETS: dict[str, tuple[str, ...]] = {
    "acoustic": ("acoustic",),
    "lexical": ("lexical",),
    "acoustic+lexical": ("acoustic", "lexical"),
}


GENDER_IDS = {"F": 0, "M": 1}


DEFAULT_MODALITIES: tuple[str, ...] = ("acoustic", "lexical")


# assumption (README assumptions table): training budget of the tuned networks. Baseline and adversarial trials get
# the same budget. The quick grid's settings were chosen so that runs converge on the demo corpus (best epoch well
# inside the allowed range), not to favour either answer.
EPOCHS = {"paper": 40, "quick": 40}


PATIENCE = {"paper": 10, "quick": 6}


LEARNING_RATE = {"paper": 1e-3, "quick": 1e-3}


# Epoch cap of the MLP attackers (None: privemo.privacy.mlp_attacker.ATTACKER_MAX_EPOCHS); the quick run caps them lower.
ATTACK_EPOCHS: dict[str, int | None] = {"paper": None, "quick": 40}


BATCH_SIZE = {"paper": 32, "quick": 32}


# assumption (README assumptions table): share of every training speaker's utterances held out of training, the
# same-speaker non-members of the membership-inference attack (the same rows for every condition of a fold).
MI_HOLDOUT = 0.2


MIN_MI_ROWS = 4  # the membership attack fits on one half of the non-members and tests on the other


@dataclass(frozen=True)
class Condition:
    """What one cross-validated model is: which modalities, which emotion task, which adversary and where it sits."""

    modality: str  # key of MODALITY_SETS
    task: str  # "activation" | "valence"
    adversary: str | None  # None | "gender" | "speaker"
    placement: str = "fused"  # "fused" | "per_modality"
    repeat: int = 0  # repetition with a new seed (``--repeats``); paired across adversaries within one repeat
    removal: str = DEFAULT_REMOVAL  # the adversary's attribute-removal method (privemo.removal.methods; "grl": the paper's)

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITY_SETS[self.modality]

    @property
    def method(self) -> RemovalMethod:
        """The ``RemovalMethod`` named ``removal`` (``privemo.removal.methods``)."""
        return removal_method(self.removal)

    @property
    def key(self) -> str:
        parts = [self.modality, self.task, self.adversary or "baseline"]
        if self.adversary:
            parts.append(self.placement)
            if not self.method.paper:  # the paper's GRL keeps the paper's keys
                parts.append(self.removal)
        if self.repeat:
            parts.append(f"r{self.repeat}")
        return "-".join(parts)


@dataclass
class ExperimentConfig:
    """Everything that defines a run; recorded verbatim in the run's manifest."""

    corpus: str = "demo"
    root: str | None = None
    # The default run leaves out the acoustic+lexical row to stay within 20 minutes on 2 CPU cores (README "Cost");
    # pass all three for the whole of Table 1.
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    tasks: tuple[str, ...] = ("activation", "valence")
    adversaries: tuple[str | None, ...] = (None, "gender", "speaker")
    placements: tuple[str, ...] = ("fused",)
    grid: str = "quick"
    n_folds: int = 5
    seed: int = 0
    epochs: int | None = None  # None: EPOCHS[grid]
    patience: int | None = None  # None: PATIENCE[grid]
    learning_rate: float | None = None  # None: LEARNING_RATE[grid]
    batch_size: int | None = None  # None: BATCH_SIZE[grid]
    embeddings: str | None = None
    out_dir: str = "results/demo"
    work_dir: str | None = None  # tuner projects; None: <out_dir>/work
    resume: bool = False
    repeats: int = 1  # repetitions of every (condition, fold) with new seeds; averaged within each fold before tests
    margin: float = 0.03  # claims.csv's equivalence margin (UAR / EER / AUC units); privemo.experiment.claims
    selection: str = "probe"  # "probe" (fresh probe on h) | "head" (the adversary head, two-sided); privemo.search.selection
    mi_holdout: float = MI_HOLDOUT
    # acoustic z-normalisation (privemo.features.acoustic.NORMALIZATIONS): "speaker" (the experiment's; uses each test
    # speaker's own audio) or "utterance" (each utterance alone, as privemo.encode normalises in deployment)
    normalization: str = "speaker"
    folds: tuple[int, ...] | None = None  # run only these outer folds (None: all)
    n_jobs: int | None = None  # worker processes (None: one per core)
    attack_epochs: int | None = None  # None: ATTACK_EPOCHS[grid]
    save_models: bool = True  # keep each fold's selected network as <out_dir>/models/<condition.key>/fold<k>.keras
    demo_per_speaker: int | None = None  # demo corpus only: utterances per speaker (None: the demo's default, 640 in all)
    verbose: int = 1
    removal: str = DEFAULT_REMOVAL  # attribute-removal method of the adversarial conditions (privemo.removal.REMOVALS)
    tensorboard: str | None = None  # TensorBoard logs of every trial under <tensorboard>/<condition.key>/fold<k>/trial_<id>
    pack: int = 1  # trials of one network shape trained together in one compiled step (same results; for GPUs)

    @property
    def method(self) -> RemovalMethod:
        """The ``RemovalMethod`` of the adversarial conditions (``removal``; ``privemo.removal.methods``)."""
        return removal_method(self.removal)

    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else EPOCHS.get(self.grid, EPOCHS["paper"])

    def resolved_batch_size(self) -> int:
        return self.batch_size if self.batch_size is not None else BATCH_SIZE.get(self.grid, BATCH_SIZE["paper"])

    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else LEARNING_RATE.get(self.grid, LEARNING_RATE["paper"])

    def resolved_patience(self) -> int:
        return self.patience if self.patience is not None else PATIENCE.get(self.grid, PATIENCE["paper"])

    def grid_dict(self) -> dict[str, tuple]:
        return GRIDS[check_choice("grid", self.grid, sorted(GRIDS))]

    def conditions(self) -> list[Condition]:
        """The table conditions (every repeat); per_modality placement only for multimodal rows (it needs two
        branches)."""
        out = []
        for repeat in range(self.repeats):
            for modality in self.modalities:
                if modality not in MODALITY_SETS:
                    raise ValueError(f"Invalid modality {modality!r}. Expected one of {sorted(MODALITY_SETS)}.")
                for task in self.tasks:
                    for adversary in self.adversaries:
                        if adversary is None:
                            out.append(Condition(modality, task, None, repeat=repeat))
                            continue
                        for placement in self.placements:
                            if placement == "per_modality" and len(MODALITY_SETS[modality]) < 2:
                                continue
                            out.append(Condition(modality, task, adversary, placement, repeat, self.removal))
        return out

    def attacker_grid(self) -> dict[str, tuple]:
        from privemo.privacy.grids import ATTACKER_GRIDS

        return ATTACKER_GRIDS[self.grid]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The layout of a fold record. 2: privacy figures on the test speakers only (speaker EER, MI attack chosen without the
# evaluation pairs), speaker-level intervals, degenerate-trial marks, no network kept before epoch MIN_KEPT_EPOCH.
RECORD_SCHEMA = 2


def check_schema(record: dict, path) -> None:
    """Refuse (one line, saying what to do) a record made under another record schema: its figures mean other things."""
    found = record.get("schema", 1)
    if found != RECORD_SCHEMA:
        raise UserError(f"{path}: cannot resume: made by an older privemo (record schema {found}, this privemo writes "
                        f"schema {RECORD_SCHEMA}, whose privacy figures are held out and intervals speaker-level). "
                        "Rerun without --resume to start over, or pass another --out.")


def run_settings(config: ExperimentConfig) -> dict:
    """The settings that decide every (condition, fold) result of a run: stored in each fold record and in
    ``<work>/settings.json``, and compared on ``--resume``, so a resumed run never mixes results or tuner trials made under
    other settings. (Which conditions and folds run, worker count and output places do not change a job's result.)"""
    embeddings = None
    if config.embeddings:
        path = Path(config.embeddings)
        embeddings = {"path": str(path.resolve()), "bytes": path.stat().st_size if path.is_file() else None}
    return {
        "schema": RECORD_SCHEMA,
        "corpus": config.corpus,
        "root": str(Path(config.root).resolve()) if config.root else None,
        "demo_per_speaker": config.demo_per_speaker,
        "n_folds": config.n_folds,
        "seed": config.seed,
        "grid": {k: list(v) for k, v in config.grid_dict().items()},
        "attacker_grid": {k: list(v) for k, v in config.attacker_grid().items()},
        "epochs": config.resolved_epochs(),
        "patience": config.resolved_patience(),
        "learning_rate": config.resolved_learning_rate(),
        "batch_size": config.resolved_batch_size(),
        "attack_epochs": config.attack_epochs if config.attack_epochs is not None else ATTACK_EPOCHS.get(config.grid),
        "embeddings": embeddings,
        "selection": config.selection,
        "mi_holdout": config.mi_holdout,
        # only when not the experiment's per-speaker scheme, so the settings of runs made before the option still match
        **({"normalization": config.normalization} if config.normalization != "speaker" else {}),
        # only when not the paper's GRL, so the settings of runs made before the option still match
        **({} if config.method.paper else {"removal": config.removal}),
    }


def settings_differ(found: dict | None, expected: dict) -> str:
    """'' when equal, else a readable list of what differs."""
    if found is None:
        return "it records no settings (made by an older privemo)"
    keys = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
    return "; ".join(f"{k}: {found.get(k)!r} there, {expected.get(k)!r} now" for k in keys)


def log(message: str, config: ExperimentConfig | None = None) -> None:
    """Progress to stderr (so stdout stays the summary)."""
    if config is None or config.verbose:
        print(message, file=sys.stderr, flush=True)


def work_dir(config: ExperimentConfig) -> Path:
    """Where tuner projects and the run's settings live: ``config.work_dir``, else ``<out_dir>/work``."""
    return Path(config.work_dir or Path(config.out_dir) / "work")


def result_path(config: ExperimentConfig, condition: Condition, fold_index: int) -> Path:
    return Path(config.out_dir) / "folds" / condition.key / f"fold{fold_index}.json"


def fold_seed(config: ExperimentConfig, condition: Condition, fold_index: int) -> int:
    """The seed of one (modality, task, fold, repeat), derived from the run's one seed: it sets the initial weights and
    the batch order. It does not depend on the adversary, so the baseline and every adversarial trial of a fold start
    from the same weights in the layers they share and see the same batches (paired comparisons); nor on execution
    order, so results do not depend on scheduling."""
    pair = f"{condition.modality}/{condition.task}/{fold_index}/{condition.repeat}"
    return (config.seed * 1_000_003 + zlib.crc32(pair.encode())) % (2**31 - 1)
