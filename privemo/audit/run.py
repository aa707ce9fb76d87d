"""The audit's attacks, fold by fold, with the experiment's own functions (protocol in `privemo.audit`).

Per fold (speaker-disjoint train / validation / test): the gender attack
(`privemo.privacy.attribute.attack_representation`, speaker-level interval), speaker verification
(`privemo.privacy.verification.speaker_verification_attack`, verifier learnt on the training speakers, EER on the test
speakers' pairs, all and same-gender, n/a with `verification_support`'s reason), and an emotion utility probe per
labelled task (the same attack function with `UTILITY_ATTACKERS`). Pooled over folds: every test speaker is scored
once, by the fold that held it out, so the per-speaker counts of all folds give one corpus-wide UAR with a speaker
bootstrap interval (`privemo.metrics`). ``compare`` pairs two representations of the same utterances fold by fold and
applies the claims table's verdict rule (`privemo.experiment.claims.paired_verdict`).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from privemo._util.validation import UserError
from privemo.audit.inputs import Representation

__all__ = ["audit_representation", "compare_representations", "audit_folds", "resolve_attackers", "det_scores",
           "FAST_ATTACKERS", "FAST_SVM_MAX_TRAIN", "UTILITY_ATTACKERS", "METRICS"]

FAST_ATTACKERS: tuple[str, ...] = ("logreg", "hgb", "svm")  # the default set: no MLP grid search
# The RBF SVM's cost grows ~quadratically with its training set (80 s per fit on 7,000 x 128 on one busy core): the fast
# set keeps it only while the attackers' training set is at most this large; `--attackers full` always runs it.
FAST_SVM_MAX_TRAIN = 3000
UTILITY_ATTACKERS: tuple[str, ...] = ("logreg",)  # the emotion utility probe: a linear probe (assumption)
DET_MAX_TRIALS = 200_000  # trials of each kind drawn for the DET curve's plot
# metric -> (+1 when higher is better for privacy or utility, what it is)
METRICS: dict[str, tuple[int, str]] = {
    "gender_uar": (-1, "gender attacker UAR on the test speakers (chance 0.5)"),
    "eer": (+1, "speaker-verification EER among the test speakers (0.5 = nothing links)"),
    "eer_same_gender": (+1, "speaker-verification EER, same-gender pairs only"),
}


def resolve_attackers(choice: str | Sequence[str], n_train: int) -> tuple[tuple[str, ...], str | None]:
    """The attacker families for ``choice`` ("default", "full" or names of `ATTACKERS`) given ``n_train`` attacker
    training rows: (names, a note when the default left the SVM out, else None)."""
    from privemo.privacy.attackers import ATTACKERS

    if isinstance(choice, str) and choice == "full":
        return tuple(ATTACKERS), None
    if isinstance(choice, str) and choice == "default":
        if n_train > FAST_SVM_MAX_TRAIN:
            return tuple(a for a in FAST_ATTACKERS if a != "svm"), (
                f"svm left out of the default set: {n_train} attacker training utterances > {FAST_SVM_MAX_TRAIN} (its "
                "cost grows quadratically; --attackers full runs it)")
        return FAST_ATTACKERS, None
    names = tuple(choice.split(",")) if isinstance(choice, str) else tuple(choice)
    unknown = [n for n in names if n not in ATTACKERS]
    if unknown or not names or len(set(names)) != len(names):
        raise UserError(f"--attackers: expected 'default', 'full' or distinct names among {sorted(ATTACKERS)}; "
                        f"found {','.join(names)}")
    return names, None


def audit_folds(rep: Representation, n_folds: int = 5, seed: int = 0) -> list[Any]:
    """Speaker-disjoint folds: the representation's own ``split`` (one fold), else ``privemo.data.folds.speaker_folds``
    (speaker strategy: speakers dealt out gender by gender)."""
    from privemo.data.folds import Fold, speaker_folds

    if rep.split is not None:
        where = lambda name: np.flatnonzero(rep.split == name).astype(np.int64)  # noqa: E731
        return [Fold(where("train"), where("validation"), where("test"))]
    values = sorted(np.unique(rep.gender))
    table = pd.DataFrame({"speaker": rep.speaker, "gender": np.where(rep.gender == values[0], "F", "M")})
    try:
        return speaker_folds(table, n_folds=n_folds, seed=seed, strategy="speaker")
    except ValueError as exc:
        raise UserError(f"{rep.source}: cannot make {n_folds} speaker-disjoint folds ({exc}); lower --folds or add a "
                        "`split` column") from None


def det_scores(h_train: np.ndarray, speakers_train: np.ndarray, h_eval: np.ndarray, speakers_eval: np.ndarray,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(target scores, non-target scores) of the verifier of `speaker_verification_attack` (standardise, shrinkage
    LDA on the training speakers, length normalisation, cosine) for the DET plot; every pair up to `DET_MAX_TRIALS`
    of each kind, a seeded sample beyond. The EER reported is always the shared function's; tests check that these
    scores give the same EER where every pair is scored."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.preprocessing import StandardScaler

    h_train, h_eval = np.asarray(h_train, np.float64), np.asarray(h_eval, np.float64)
    scaler = StandardScaler().fit(h_train)
    n_components = int(min(np.unique(speakers_train).size - 1, h_train.shape[1]))
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=n_components)
    lda.fit(scaler.transform(h_train), speakers_train)
    z = lda.transform(scaler.transform(h_eval))
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    n = len(z)
    if n * (n - 1) // 2 <= 4 * DET_MAX_TRIALS:
        i, j = np.triu_indices(n, k=1)
    else:
        i, j = rng.integers(0, n, 8 * DET_MAX_TRIALS), rng.integers(0, n, 8 * DET_MAX_TRIALS)
        keep = i != j
        i, j = i[keep], j[keep]
    same = speakers_eval[i] == speakers_eval[j]
    scores = np.einsum("ij,ij->i", z[i], z[j])
    target, nontarget = scores[same], scores[~same]
    if target.size > DET_MAX_TRIALS:
        target = rng.choice(target, DET_MAX_TRIALS, replace=False)
    if nontarget.size > DET_MAX_TRIALS:
        nontarget = rng.choice(nontarget, DET_MAX_TRIALS, replace=False)
    return target, nontarget


def _fold_verification(rep: Representation, fold, gender_code: np.ndarray, seed: int, n_bootstrap: int) -> dict:
    """The experiment's speaker-verification figures for one fold (as `privemo.experiment.evaluate.privacy_figures`)."""
    from privemo.privacy.verification import speaker_verification_attack, verification_support

    spk = rep.speaker
    names, counts = np.unique(spk[fold.test], return_counts=True)
    evaluation = fold.test[np.isin(spk[fold.test], names[counts >= 2])]  # a trial needs two utterances of a speaker
    reason = verification_support(spk[evaluation], gender_code[evaluation])
    if np.unique(spk[fold.train]).size < 2:
        reason = "fewer than two training speakers to learn a verifier from"
    if reason is not None:
        return {"eer": None, "eer_same_gender": None, "reason": reason}
    result = speaker_verification_attack(rep.h[fold.train], spk[fold.train], rep.h[evaluation], spk[evaluation],
                                         genders_eval=gender_code[evaluation], seed=seed, n_bootstrap=n_bootstrap)
    target, nontarget = det_scores(rep.h[fold.train], spk[fold.train], rep.h[evaluation], spk[evaluation], seed)
    result["det"] = {"target": target, "nontarget": nontarget}  # arrays: kept out of report.json
    return result


def _attack(rep: Representation, fold, y: np.ndarray, strata: np.ndarray, attackers, seed: int, n_bootstrap: int,
            mlp_epochs: int | None) -> dict:
    """One attribute attack of `attack_representation` on a fold (n/a with a reason where the fold cannot support it)."""
    from privemo.privacy.attribute import attack_representation

    tr, va, te = fold.train, fold.validation, fold.test
    for part, rows in (("training", tr), ("test", te)):
        if np.unique(y[rows]).size < 2:
            return {"test_uar": None, "reason": f"one class in the fold's {part} speakers"}
    unseen = np.setdiff1d(np.unique(np.concatenate([y[va], y[te]])), np.unique(y[tr]))
    if unseen.size:
        return {"test_uar": None, "reason": f"classes {unseen.tolist()} absent from the training speakers"}
    kw = {} if mlp_epochs is None else {"epochs": mlp_epochs}
    report = attack_representation(rep.h[tr], y[tr], rep.h[va] if len(va) else None, y[va] if len(va) else None,
                                   rep.h[te], y[te], seed=seed, attackers=attackers, speakers_test=rep.speaker[te],
                                   strata_test=strata[te], n_bootstrap=n_bootstrap, **kw)
    out = report.to_dict()
    out["test_uar"] = out["strongest_test_uar"]
    return out


def _pooled(folds: list[dict], key: str, seed: int, n_bootstrap: int) -> dict | None:
    """One UAR over every fold's test speakers (each scored by its own fold's selected attacker) with a speaker
    bootstrap interval within gender: the per-speaker counts of all folds joined."""
    from privemo.metrics import speaker_resamples, uar_from_counts

    parts = [f[key]["per_speaker"] for f in folds if (f.get(key) or {}).get("per_speaker")]
    if not parts:
        return None
    width = max(np.asarray(p["support"]).shape[1] for p in parts)
    pad = lambda a: np.pad(np.asarray(a, float), ((0, 0), (0, width - np.asarray(a).shape[1])))  # noqa: E731
    support = np.concatenate([pad(p["support"]) for p in parts])
    hits = np.concatenate([pad(p["hits"]) for p in parts])
    stratum = np.concatenate([np.asarray(p["stratum"]) for p in parts])
    ci = None
    if n_bootstrap and len(stratum) >= 2:
        stats = uar_from_counts(support, hits, speaker_resamples(stratum, n_bootstrap, seed))
        ci = [float(q) for q in np.nanquantile(stats, [0.025, 0.975])]
    return {"uar": float(uar_from_counts(support, hits)), "ci": ci, "n_speakers": int(len(stratum)),
            "method": "per-speaker counts of every fold's test speakers joined; cluster bootstrap over speakers "
                      "within gender"}


def _fold_mean(values: list[float | None]) -> dict:
    """Mean over folds with a two-sided 95 % t interval (None with fewer than two folds)."""
    from scipy import stats

    v = np.array([x for x in values if x is not None and np.isfinite(x)], float)
    if not v.size:
        return {"mean": None, "ci": None, "n": 0}
    ci = None
    if v.size >= 2:
        half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
        ci = [float(v.mean() - half), float(v.mean() + half)]
    return {"mean": float(v.mean()), "ci": ci, "n": int(v.size)}


def audit_representation(
    rep: Representation,
    *,
    n_folds: int = 5,
    seed: int = 0,
    attackers: str | Sequence[str] = "default",
    n_bootstrap: int = 1000,
    mlp_epochs: int | None = None,
    progress: Callable[[str], None] | None = None,
    membership: dict | None = None,
) -> dict:
    """Audit one representation: per fold the gender attack, speaker verification and emotion utility probes, pooled
    and fold-mean summaries. Returns a dict (``report.json``'s content; DET scores as arrays under ``folds[k]
    ["verification"]["det"]``). ``membership`` is a membership-inference result to record (None: n/a, no emotion
    head). ``progress`` receives one line per finished fold."""
    from privemo._util.progress import Progress

    folds = audit_folds(rep, n_folds, seed)
    n_train = max(len(f.train) for f in folds)
    names, note = resolve_attackers(attackers, n_train)
    values = sorted(np.unique(rep.gender))
    gender_code = (rep.gender == values[1]).astype(np.int64)
    tracker = Progress(["fold"] * len(folds), len(folds), 1, progress or (lambda s: None))
    results = []
    for k, fold in enumerate(folds):
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"fold": k, **_fold_sizes(rep, fold)}
        entry["gender"] = _attack(rep, fold, rep.gender, gender_code, names, seed, n_bootstrap, mlp_epochs)
        entry["verification"] = _fold_verification(rep, fold, gender_code, seed, n_bootstrap)
        entry["emotion"] = {task: _attack(rep, fold, y, gender_code, UTILITY_ATTACKERS, seed, n_bootstrap, None)
                            for task, y in rep.emotion.items()}
        entry["seconds"] = time.perf_counter() - t0
        results.append(entry)
        g = entry["gender"].get("test_uar")
        eer = entry["verification"].get("eer")
        tracker.finished("fold", entry["seconds"],
                         f"fold {k}: gender attacker UAR {'n/a' if g is None else f'{g:.3f}'}, EER "
                         f"{'n/a' if eer is None else f'{eer:.3f}'} ({entry['seconds']:.1f} s)")
    summary = {
        "gender_uar": _fold_mean([f["gender"].get("test_uar") for f in results]),
        "gender_uar_pooled": _pooled(results, "gender", seed, n_bootstrap),
        "eer": _fold_mean([f["verification"].get("eer") for f in results]),
        "eer_same_gender": _fold_mean([f["verification"].get("eer_same_gender") for f in results]),
        "families": {a: _fold_mean([f["gender"].get("results", {}).get(a, {}).get("test_uar") for f in results])
                     for a in names},
        "emotion": {task: {**_fold_mean([f["emotion"][task].get("test_uar") for f in results]),
                           "pooled": _pooled([f["emotion"] for f in results], task, seed, n_bootstrap)}
                    for task in rep.emotion},
    }
    return {
        "source": rep.source, "notes": rep.notes, "n_utterances": len(rep), "n_features": int(rep.h.shape[1]),
        "n_speakers": int(np.unique(rep.speaker).size), "genders": [str(v) for v in values],
        "folds_from": "the representation's split column" if rep.split is not None else
        f"privemo.data.folds.speaker_folds(n_folds={n_folds}, seed={seed}, strategy='speaker')",
        "attackers": list(names), "attackers_note": note, "utility_attackers": list(UTILITY_ATTACKERS),
        "seed": int(seed), "n_bootstrap": int(n_bootstrap), "folds": results, "summary": summary,
        "membership": membership or {"auc": None, "reason": "no emotion head: membership inference needs the whole "
                                                            "network's emotion outputs (a bare encoder or a features "
                                                            "file has none)"},
    }



def _fold_sizes(rep: Representation, fold) -> dict[str, Any]:
    """Utterances and speakers of a fold's parts, and its test speakers."""
    parts = {"train": fold.train, "validation": fold.validation, "test": fold.test}
    return {"n": {name: int(len(rows)) for name, rows in parts.items()},
            "speakers": {name: int(np.unique(rep.speaker[rows]).size) for name, rows in parts.items()},
            "test_speakers": sorted(np.unique(rep.speaker[fold.test]).tolist())}

def _aligned(a: Representation, b: Representation) -> Representation:
    """``b`` in ``a``'s row order: matched by utterance id when both have them, else row by row; the same speakers and
    genders required."""
    if a.h.shape[0] != b.h.shape[0] and (a.utterance_id is None or b.utterance_id is None):
        raise UserError(f"--compare: {a.source} has {len(a)} rows and {b.source} {len(b)}: two representations of the "
                        "same utterances are needed (add utterance_id columns to match them)")
    if a.utterance_id is not None and b.utterance_id is not None:
        index = pd.Index(b.utterance_id)
        missing = np.setdiff1d(a.utterance_id, b.utterance_id)
        if missing.size or len(a) != len(b):
            raise UserError(f"--compare: {b.source}: column `utterance_id`: expected the utterances of {a.source}; "
                            f"{missing.size} of them missing (e.g. {missing[:3].tolist()}), {len(b)} rows against "
                            f"{len(a)}")
        b = b.take(index.get_indexer(a.utterance_id))
    for column in ("speaker", "gender"):
        if not np.array_equal(getattr(a, column), getattr(b, column)):
            i = int(np.argmax(getattr(a, column) != getattr(b, column)))
            raise UserError(f"--compare: {b.source}: column `{column}`: expected the same values as {a.source} row by "
                            f"row; row {i} differs ({getattr(a, column)[i]!r} vs {getattr(b, column)[i]!r})")
    return b


def compare_representations(a: Representation, b: Representation, *, n_folds: int = 5, seed: int = 0,
                            attackers: str | Sequence[str] = "default", n_bootstrap: int = 1000,
                            mlp_epochs: int | None = None, margin: float | None = None,
                            progress: Callable[[str], None] | None = None) -> dict:
    """Audit A and B (two representations of the same utterances) on the same folds and compare them: per metric the
    fold values, the paired differences B - A and the verdict of `privemo.experiment.claims.paired_verdict`
    (B "better" / "worse" than A in the metric's own direction: lower gender UAR, higher EER, higher emotion UAR),
    plus a paired speaker-level interval per fold for the UARs."""
    from privemo.experiment.claims import MARGIN, paired_verdict
    from privemo.metrics import paired_speaker_difference

    margin = MARGIN if margin is None else float(margin)
    b = _aligned(a, b)
    split = a.split if a.split is not None else b.split  # one split for both: the same folds
    a, b = replace(a, split=split), replace(b, split=split)
    say = progress or (lambda s: None)
    say(f"audit A: {a.source}")
    report_a = audit_representation(a, n_folds=n_folds, seed=seed, attackers=attackers, n_bootstrap=n_bootstrap,
                                    mlp_epochs=mlp_epochs, progress=progress)
    say(f"audit B: {b.source}")
    report_b = audit_representation(b, n_folds=n_folds, seed=seed, attackers=attackers, n_bootstrap=n_bootstrap,
                                    mlp_epochs=mlp_epochs, progress=progress)
    getters: dict[str, tuple[int, Callable[[dict], Any], str | None]] = {
        "gender_uar": (-1, lambda f: f["gender"].get("test_uar"), "gender"),
        "eer": (+1, lambda f: f["verification"].get("eer"), None),
        "eer_same_gender": (+1, lambda f: f["verification"].get("eer_same_gender"), None),
    }
    for task in sorted(set(a.emotion) & set(b.emotion)):
        getters[f"emotion_uar_{task}"] = (+1, lambda f, t=task: f["emotion"][t].get("test_uar"), task)
    rows = []
    for metric, (sign, get, counts) in getters.items():
        va = [get(f) for f in report_a["folds"]]
        vb = [get(f) for f in report_b["folds"]]
        nan = lambda v: [math.nan if x is None else float(x) for x in v]  # noqa: E731
        verdict = paired_verdict(nan(va), nan(vb), sign > 0, margin)
        speaker_ci = []
        for fa, fb in zip(report_a["folds"], report_b["folds"]):
            if counts is None:
                speaker_ci.append(None)
                continue
            pa = (fa["gender"] if counts == "gender" else fa["emotion"][counts]).get("per_speaker")
            pb = (fb["gender"] if counts == "gender" else fb["emotion"][counts]).get("per_speaker")
            if not pa or not pb or not n_bootstrap:
                speaker_ci.append(None)
                continue
            draws = paired_speaker_difference(pa, pb, n_resamples=n_bootstrap, seed=seed)
            speaker_ci.append([float(q) for q in np.nanquantile(draws, [0.025, 0.975])])
        rows.append({"metric": metric, "direction": "higher is better" if sign > 0 else "lower is better",
                     "a": va, "b": vb, "differences": [None if x is None or y is None else float(y - x)
                                                       for x, y in zip(va, vb)],
                     "speaker_ci_per_fold": speaker_ci, **verdict})
    return {"a": report_a, "b": report_b, "comparison": rows, "margin": margin,
            "rule": "privemo.experiment.claims.paired_verdict: paired differences B - A over folds, two-sided paired t; "
                    "better / worse when the 95 % interval excludes 0 (in the metric's direction), equivalent when the "
                    f"90 % interval lies inside ±{margin:g} (TOST), else inconclusive; n/a with fewer than two folds"}


def stderr_progress(text: str) -> None:
    """Progress lines for long audits go to stderr."""
    print(f"privemo.audit: {text}", file=sys.stderr, flush=True)
