"""What one trained network gives: its outputs and h for table rows, a trial's scores for the record, and the selected
network's privacy figures (fresh gender attackers, speaker verification, membership inference).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from privemo.experiment.config import ATTACK_EPOCHS, MIN_MI_ROWS, Condition, ExperimentConfig
from privemo.experiment.inputs import CorpusData, SearchSetup


class Represented(NamedTuple):
    """One network's outputs for some table rows: emotion probabilities and h, and where each table row sits in them
    (``position[table row]``, -1 for rows not represented)."""

    position: np.ndarray
    emotion: np.ndarray
    h: np.ndarray

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Positions in ``emotion`` / ``h`` of the table rows ``rows``."""
        return self.position[np.asarray(rows, np.int64)]


def represent(model, inputs: dict, rows: np.ndarray) -> Represented:
    from privemo.data.pipeline import predict
    from privemo.nn.training import with_representation

    out = predict(with_representation(model), inputs, rows)
    position = np.full(int(rows.max()) + 1, -1, np.int64)
    position[rows] = np.arange(len(rows))
    return Represented(position, np.asarray(out["emotion"]), np.asarray(out["h"]))


def trial_record(trial, out: Represented, data: CorpusData, fold, setup: SearchSetup, condition: Condition) -> dict:
    """A trial's hyper-parameters and validation scores, plus its own network's test emotion UAR and the test UAR of a
    fresh gender probe fitted on its training speakers' h (for the lambda trade-off; never used for selection)."""
    from privemo.metrics import uar
    from privemo.search.selection import gender_probe_uar, is_degenerate

    metrics = trial.metrics
    best = {name: float(metrics.get_best_value(name)) for name in metrics.metrics}
    y = setup.targets["emotion"]
    train = setup.train_rows[data.gender[setup.train_rows] >= 0]
    test = fold.test[data.gender[fold.test] >= 0]
    privacy = None
    if condition.adversary:
        privacy = best.get("val_probe", best.get(f"val_{condition.adversary}_uar"))
    as_int = lambda name: int(best[name]) if name in best else None  # noqa: E731
    chance = 1.0 / len(np.unique(y[setup.train_rows]))
    return {
        "trial_id": trial.trial_id,
        "hp": dict(trial.hyperparameters.values),
        "grl_lambda": trial.hyperparameters.values.get("grl_lambda"),
        "val_objective": best.get("val_objective"),
        "val_emotion_uar": best.get("val_emotion_uar"),
        "degenerate": is_degenerate(best.get("val_emotion_uar"), chance),
        "val_privacy": privacy,
        "best_epoch": as_int("best_epoch"),
        "epochs_run": as_int("epochs_run"),
        "test_emotion_uar": float(uar(y[fold.test], out.emotion[out.rows(fold.test)])),
        "test_probe_uar": gender_probe_uar(out.h[out.rows(train)], data.gender[train], out.h[out.rows(test)],
                                           data.gender[test]) if len(train) and len(test) else None,
    }


def privacy_figures(out: Represented, data: CorpusData, fold, setup: SearchSetup, config: ExperimentConfig) -> dict:
    """The selected network's privacy figures, all on the test speakers (the validation speakers serve selection
    only): fresh gender attackers (train speakers -> validation speakers -> test speakers, speaker-level interval),
    speaker verification among the test speakers with a verifier learnt on the training speakers, and membership
    inference (training rows vs the same speakers' held-out rows)."""
    from privemo.metrics import SPEAKER_BOOTSTRAP_RESAMPLES
    from privemo.privacy.attribute import attack_representation
    from privemo.privacy.membership import membership_inference
    from privemo.privacy.verification import speaker_verification_attack, verification_support

    attack_kw = dict(seed=setup.seed, grid=config.attacker_grid())
    attack_epochs = config.attack_epochs if config.attack_epochs is not None else ATTACK_EPOCHS.get(config.grid)
    if attack_epochs is not None:
        attack_kw["epochs"] = attack_epochs
    g, spk = data.gender, data.speakers
    known = lambda rows: rows[g[rows] >= 0]  # noqa: E731
    attacks: dict = {}
    tr, va, te = known(fold.train), known(fold.validation), known(fold.test)
    if len(np.unique(g[tr])) == 2 and len(np.unique(g[te])) == 2:
        report = attack_representation(out.h[out.rows(tr)], g[tr], out.h[out.rows(va)], g[va],
                                       out.h[out.rows(te)], g[te], speakers_test=spk[te], **attack_kw)
        attacks["gender"] = report.to_dict()
    train_spk = fold.train[spk[fold.train] != ""]
    evaluation = fold.test[spk[fold.test] != ""]
    names, counts = np.unique(spk[evaluation], return_counts=True)
    evaluation = evaluation[np.isin(spk[evaluation], names[counts >= 2])]  # a trial needs two utterances of a speaker
    genders = np.where(g[evaluation] >= 0, g[evaluation], -1)
    reason = verification_support(spk[evaluation], genders)
    if len(set(spk[train_spk])) < 2:
        reason = "fewer than two training speakers to learn a verifier from"
    verification = {"eer": None, "eer_same_gender": None, "reason": reason}
    if reason is None:
        verification = speaker_verification_attack(
            out.h[out.rows(train_spk)], spk[train_spk], out.h[out.rows(evaluation)], spk[evaluation],
            genders_eval=genders if (genders >= 0).all() else None, seed=setup.seed,
            n_bootstrap=SPEAKER_BOOTSTRAP_RESAMPLES)
    verification["eval_speakers"] = sorted(set(spk[evaluation]))
    attacks["speaker_verification"] = verification
    result: dict = {"attacks": attacks}
    if len(setup.heldout_rows) < MIN_MI_ROWS:
        result["membership"] = {"auc": None, "skipped": f"{len(setup.heldout_rows)} held-out utterances (fewer than "
                                                         f"{MIN_MI_ROWS}): too few non-members to attack"}
    else:
        y = setup.targets["emotion"]
        members, nonmembers = setup.train_rows, setup.heldout_rows
        result["membership"] = membership_inference(out.emotion[out.rows(members)], y[members],
                                                    out.emotion[out.rows(nonmembers)], y[nonmembers],
                                                    seed=setup.seed).to_dict()
    return result


def emotion_figures(out: Represented, data: CorpusData, fold, setup: SearchSetup) -> dict:
    """The selected network's test emotion UAR with its speaker-level interval (whole test speakers resampled within
    gender) and the per-speaker counts that pair it with another network of the same fold."""
    from privemo.metrics import speaker_uar_interval, uar

    y = setup.targets["emotion"]
    pred = out.emotion[out.rows(fold.test)]
    spk = speaker_uar_interval(y[fold.test], pred, data.speakers[fold.test], data.gender[fold.test],
                               n_classes=pred.shape[1], seed=setup.seed)
    return {"emotion_uar": float(uar(y[fold.test], pred)), "emotion_uar_ci": spk["ci"], "ci_method": spk["method"],
            "n": int(len(fold.test)), "n_speakers": spk["n_speakers"], "per_speaker": spk["per_speaker"]}
