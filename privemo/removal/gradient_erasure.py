"""Non-linear concept erasure by gradient subspaces (removal "gradient_erasure"): remove from h every direction that
fresh *non-linear* probes use to read the attribute -- and LEACE's directions where a linear probe reads it -- round by
round, until none of them (logistic regression, neural network, RBF SVM, gradient-boosted trees) reads it better than
chance on rows it was not fitted on.

Why: after LEACE (``privemo.removal.leace``) no linear classifier reads gender from h, but an RBF SVM and trees still do
(issue 24: 0.59-0.69 UAR on demo-podcast): the attribute is left in non-linear form -- in the spread of a subspace, in
the product of two signs. Kernel erasure (Ravfogel, Vargas, Goldberg and Cotterell, "Adversarial concept erasure in
kernel space", EMNLP 2022) protects against the kernel it was fitted for and, as they report, not against other
non-linear adversaries. This method therefore asks several attacker families at once and removes what any of them uses.

The method (privemo's combination of published pieces):

1. Whitening, as LEACE (Belrose et al., "LEACE: Perfect linear concept erasure in closed form", NeurIPS 2023): h is
   centred and whitened, ``x = W (h - mu)`` with ``W = Sigma_hh^{-1/2}`` (pseudo-inverse, LeaceEraser's cuts). In
   whitened coordinates a part of h that is independent of the rest (the attribute's part, say) spans a subspace
   orthogonal to the rest's, so an orthogonal projection there removes it and leaves the rest; mapped back, the edit is
   oblique in h's coordinates, as LEACE's: ``r(h) = h - W^+ B B^T W (h - mu)``, B an orthonormal basis (whitened
   coordinates) of the removed directions.
2. Rounds of probing and projection, as INLP with linear classifiers (Ravfogel et al., "Null it out: guarding protected
   attributes by iterative nullspace projection", ACL 2020) and iterative gradient-based projection with neural ones
   (Iskander, Radinsky and Belinkov, "Shielded representations: protecting sensitive attributes through iterative
   gradient-based projection", Findings of ACL 2023). Each round fits fresh probes (``probes``: logistic regression, a
   multi-layer perceptron, an RBF SVM, histogram gradient boosting) on the projected whitened h by ``cv``-fold
   cross-fitting, so every row is predicted once by probes that did not see it (whole speakers with ``groups``), and
   scores each probe's pooled predictions (UAR). The rounds stop once the best probe is at most
   ``chance + tol + z * se`` (se: the standard error of a random guess's UAR on these rows, ``chance_uar_se``; a probe
   must beat chance by more than sampling noise to count as reading the attribute).
3. Otherwise, where logistic regression reads the attribute, the round removes LEACE's directions (the column space of
   the whitened cross-covariance with the one-hot attribute), after which no linear classifier does better than a
   constant on the fitted rows (``leace="auto"``; ``True``: before the first round in any case, as LeaceEraser;
   ``False``: never, the linear probe's reading is then left to the non-linear probes' gradients). Else:
4. the subspace the non-linear probes read: the expected gradient outer product ``G = E[grad f(x) grad f(x)^T]`` of
   each differentiable probe's logits f (the MLP's; the SVM's decision function for a binary attribute) over its fitting
   rows, each fit's G scaled to trace 1, averaged over the folds and summed over the probes that read the attribute. A
   smooth function varies only along the eigenvectors of G with non-zero eigenvalues (the "active subspace":
   Constantine, Dow and Wang, SIAM J. Sci. Comput. 2014; the EGOP estimator: Trivedi, Wang, Kpotufe and Shakhnarovich,
   UAI 2014). The round removes the leading eigenvectors: those of eigenvalue at least ``threshold`` times the largest,
   cut at the largest eigengap (``_n_directions``), so a spectrum of a few signal directions above a noise floor loses
   just the signal directions; where the evidence is weak (the best of those probes beats the line by less than
   ``z * se``) it removes only the leading one and probes again, since a spectrum of noise has no real gap.

Unlike IGBP, which moves each point onto its probe's decision boundary, the released representation is one affine map of
h, the same for every row and needing no attribute at inference: ``transform(X) = X - (X - mean_) @ matrix_.T``, with
LeaceEraser's attributes, so ``privemo.removal.erasure.AffineErasure.from_eraser`` (``erasure_layer``) carries it in a
Keras model (a ``.keras`` file reloads with ``privemo.load_model``) and ``apply_erasure`` appends it to a trained
network (``apply_gradient_erasure``).

What it can and cannot do. Removing a direction removes everything along it: when the attribute lives in directions of
its own (possibly read only non-linearly, as in the known-answer tests and ``benchmarks/nonlinear_erasure.py``), emotion
is kept; when the attribute is carried by the very directions that carry emotion, removing it costs emotion, and an
attribute that is a non-linear function of emotion's own features cannot be removed by any projection without removing
those features (then a learned non-linear map or distribution matching must do it, at a cost to emotion). LEACE's step
also erases chance correlation between the attribute and emotion in the fitted rows, hence ``leace="auto"``: on planted
h with no linear gender signal but gender and emotion drawn independently (so correlated by chance; 1,200 rows, d = 16,
5 seeds), ``leace=True`` removed one direction that cost the linear emotion probe 0.003-0.030 UAR (mean 0.019).
Cost: each round fits every probe ``cv`` times; the trees' OpenMP threads can make them many times slower on busy
cores, so callers sharing a machine may run ``fit`` under ``threadpoolctl.threadpool_limits(1)`` (the tests and the
benchmark do): 2-10 s for 1,500 rows of 32 features there.
The stopping rule sees a finite sample: a probe reading less than ``tol + z * se`` above chance stops the rounds, and
attackers fitted on more rows read more; privemo's privacy figures come from fresh attackers on held-out speakers, as
for every method.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import validate_data

from privemo._util.validation import check_float, check_int, invalid
from privemo.removal.leace import AffineEraser

__all__ = ["GradientSubspaceEraser", "PROBES", "LEACE_MODES", "chance_uar_se", "erasure_layer",
           "apply_gradient_erasure", "mlp_logit_gradients", "svc_decision_gradients"]

#: the probe families of the stopping rule; "mlp" and "svm" (binary attributes) also give the gradients, "logreg"
#: decides LEACE's step (leace="auto")
PROBES = ("logreg", "mlp", "svm", "hgb")
_GRADIENT_PROBES = ("mlp", "svm")
LEACE_MODES = (True, False, "auto")
#: L-BFGS iterations of the MLP probe (full-batch, strongly L2-penalised: on 1,000 planted rows it read gender at 0.93
#: where Adam with early stopping read 0.84, and Adam's early stopping gave up at once on a few hundred rows)
MLP_MAX_ITER = 300


def _whitening(h: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W, W^+): Sigma_hh^{-1/2} and Sigma_hh^{1/2} on the kept eigenvalues (LeaceEraser's cuts)."""
    hc = h - mean
    sigma = hc.T @ hc / max(len(h) - 1, 1)
    values, vectors = np.linalg.eigh(sigma)
    eps = np.finfo(np.float64).eps
    cut = max(len(values) * eps * values.max(), eps * np.mean(np.sum(h * h, axis=1)), np.finfo(float).tiny)
    keep = values > cut
    v, s = vectors[:, keep], values[keep]
    return (v / np.sqrt(s)) @ v.T, (v * np.sqrt(s)) @ v.T


def mlp_logit_gradients(mlp, x: np.ndarray) -> np.ndarray:
    """Gradients of a fitted ``sklearn.neural_network.MLPClassifier``'s output logits with respect to its inputs,
    (n, n_outputs, d): one output for a binary attribute (the log-odds), else one per class, centred over the classes
    (softmax is unchanged by a common shift)."""
    derivative = {"relu": lambda a: (a > 0).astype(a.dtype), "tanh": lambda a: 1.0 - a * a,
                  "logistic": lambda a: a * (1.0 - a), "identity": lambda a: np.ones_like(a)}
    if mlp.activation not in derivative:
        raise invalid("mlp", "an MLPClassifier with activation relu, tanh, logistic or identity", mlp.activation)
    act = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)),
           "identity": lambda z: z}[mlp.activation]
    hidden, a = [], x
    for w, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
        a = act(a @ w + b)
        hidden.append(a)
    out = mlp.coefs_[-1]  # (H, C)
    if out.shape[1] > 1:
        out = out - out.mean(axis=1, keepdims=True)
    grads = np.empty((len(x), out.shape[1], x.shape[1]))
    for c in range(out.shape[1]):
        g = np.broadcast_to(out[:, c], (len(x), out.shape[0]))
        for w, a in zip(reversed(mlp.coefs_[:-1]), reversed(hidden)):
            g = (g * derivative[mlp.activation](a)) @ w.T
        grads[:, c] = g
    return grads


def svc_decision_gradients(svc, x: np.ndarray, gamma: float, chunk: int = 256) -> np.ndarray:
    """Gradients (n, 1, d) of a fitted binary RBF ``sklearn.svm.SVC``'s decision function
    ``sum_i a_i exp(-gamma |x - s_i|^2) + b`` with respect to x (``gamma``: the kernel's, as a float)."""
    sv, coef = svc.support_vectors_, svc.dual_coef_[0]
    grads = np.empty((len(x), 1, x.shape[1]))
    for start in range(0, len(x), chunk):
        xx = x[start:start + chunk]
        sq = np.maximum(np.sum(xx * xx, 1)[:, None] + np.sum(sv * sv, 1)[None, :] - 2.0 * xx @ sv.T, 0.0)
        k = np.exp(-gamma * sq) * coef  # (m, n_sv)
        grads[start:start + chunk, 0] = -2.0 * gamma * (k.sum(1)[:, None] * xx - k @ sv)
    return grads


def _folds(codes: np.ndarray, groups, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``cv`` (fitting rows, held-out rows) pairs covering every row once as held out: stratified by class, and by
    whole groups when ``groups`` is given; every fitting part holds every class."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    rows = np.arange(len(codes))
    if groups is None:
        if np.bincount(codes).min() < cv:
            raise invalid("y", f"at least cv={cv} rows of every class", received=f"class counts {np.bincount(codes)}")
        return list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(rows, codes))
    groups = np.asarray(groups)
    if groups.shape != codes.shape:
        raise invalid("groups", f"a 1-D array of length {len(codes)} (one group id per row)",
                      received=f"array of shape {groups.shape}")
    if len(np.unique(groups)) < cv:
        raise invalid("groups", f"at least cv={cv} groups", received=f"{len(np.unique(groups))} groups")
    folds = list(StratifiedGroupKFold(cv, shuffle=True, random_state=seed).split(rows, codes, groups))
    n_classes = int(codes.max()) + 1
    if any(len(np.unique(codes[fit])) < n_classes for fit, _ in folds):
        raise invalid("groups", f"groups that split into {cv} folds whose fitting parts hold every class",
                      received=f"{len(np.unique(groups))} groups")
    return folds


def chance_uar_se(codes: np.ndarray) -> float:
    """Standard error of the UAR of guessing uniformly at random on rows of these classes (class codes 0..C-1):
    ``sqrt(sum_c (1/C)(1 - 1/C) / n_c) / C`` (0.5 / sqrt(n) for two balanced classes)."""
    counts = np.bincount(codes).astype(float)
    c = len(counts)
    return float(np.sqrt(np.sum((1.0 / c) * (1.0 - 1.0 / c) / counts)) / c)


def _n_directions(values: np.ndarray, active: int, threshold: float, cap: int) -> int:
    """How many of the leading eigenvectors (eigenvalues ``values``, largest first) a round removes: among the k with
    ``values[k-1] >= threshold * values[0]`` (at most ``cap``, and fewer than the ``active`` directions not yet removed
    unless only one is left), the k after which the spectrum drops most (the largest ratio ``values[k-1] / values[k]``,
    the eigengap heuristic): the probes' signal directions, not the noise floor below them."""
    if cap < 1 or active < 1 or values[0] <= 0:
        return 0
    if active == 1:
        return 1
    candidates = [k for k in range(1, min(cap, active - 1) + 1) if values[k - 1] >= threshold * values[0]]
    if not candidates:
        return 1
    floor = values[0] * 1e-12
    return max(candidates, key=lambda k: values[k - 1] / max(values[k], floor))


class GradientSubspaceEraser(AffineEraser):
    """Erase a categorical attribute (e.g. gender) from representations against linear and non-linear probes: rounds
    of cross-fitted probing (``probes``), each removing LEACE's directions (when logistic regression reads the
    attribute) or the leading eigenvectors of the MLP / RBF-SVM probes' expected gradient outer product, until no probe
    reads the attribute above ``chance + tol + z * se`` (module docstring).

    Args:
        tol: margin over chance, in UAR, that the stopping rule allows beyond the noise term (float >= 0). With ``z``
            the method's strength: lower values remove more.
        z: the noise term's multiple of se, the standard error of a random guess's UAR on the fitted rows (float >= 0):
            the line is chance + 0.01 + 0.029 for 1,200 balanced rows at the defaults.
        cv: cross-fitting folds per round (int >= 2).
        max_iter: at most this many rounds (int >= 1); ``converged_`` says whether the stopping rule was met.
        threshold: a gradient round removes eigenvectors of eigenvalue at least ``threshold`` times the largest, cut at
            the largest eigengap (float in (0, 1]); one eigenvector only where the best probe beats the line by less
            than ``z * se``.
        max_directions: at most this many directions per gradient round (int >= 1, or None: no cap beyond the width).
        probes: the probe families, a subset of ``PROBES`` holding "mlp" or "svm" (the gradient sources; "svm" only for
            a binary attribute; "logreg" for ``leace="auto"``).
        hidden: the MLP probe's hidden layer widths (ReLU; trained by L-BFGS, ``MLP_MAX_ITER`` iterations).
        alpha: the MLP probe's L2 penalty (a strong one: a smooth probe's gradients lie in the directions it reads).
        leace: "auto" (LEACE's step in a round where logistic regression reads the attribute), True (LEACE before the
            first round: linear guardedness on the fitted rows in any case, as ``LeaceEraser``) or False (never).
        random_state: seed of the folds and the probes (int >= 0).

    Fitted attributes:
        mean_, matrix_: ``transform(X) = X - (X - mean_) @ matrix_.T`` (LeaceEraser's convention, so
            ``privemo.removal.erasure.leace_affine`` / ``AffineErasure.from_eraser`` accept the eraser).
        rank_: number of removed directions (in whitened coordinates); ``basis_``: (d, rank_) their orthonormal basis.
        history_: one dict per round: "rank" before it, "uar" (each probe's cross-fitted UAR), "line" (the stopping
            rule's chance + tol + z * se), "step" ("stop", "leace" or "gradient") and "added" (directions removed).
        converged_: whether the last round met the stopping rule; n_iter_: the number of rounds run.
        classes_, n_features_in_ (``feature_names_in_`` for a DataFrame with string column names).

    A scikit-learn transformer: ``fit(X, y, groups=None)`` (``groups``, e.g. speaker ids, keeps whole groups in one
    fold), ``transform(X)``, ``get_feature_names_out()`` (the input's names: the edit keeps every feature).
    """

    def __init__(self, tol: float = 0.01, z: float = 2.0, cv: int = 3, max_iter: int = 10, threshold: float = 0.2,
                 max_directions: int | None = None, probes: tuple[str, ...] = PROBES,
                 hidden: tuple[int, ...] = (64, 64), alpha: float = 1.0, leace: bool | str = "auto",
                 random_state: int = 0) -> None:
        self.tol = tol
        self.z = z
        self.cv = cv
        self.max_iter = max_iter
        self.threshold = threshold
        self.max_directions = max_directions
        self.probes = probes
        self.hidden = hidden
        self.alpha = alpha
        self.leace = leace
        self.random_state = random_state

    def _settings(self) -> dict[str, Any]:
        probes = tuple(self.probes) if isinstance(self.probes, (list, tuple)) else (self.probes,)
        if not probes or any(p not in PROBES for p in probes) or not set(probes) & set(_GRADIENT_PROBES):
            raise invalid("probes", f"a non-empty subset of {PROBES} holding 'mlp' or 'svm'", self.probes)
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else (self.hidden,)
        if not hidden:
            raise invalid("hidden", "one or more hidden layer widths (ints >= 1)", self.hidden)
        if not any(self.leace is mode or (isinstance(mode, str) and self.leace == mode) for mode in LEACE_MODES):
            raise invalid("leace", 'True, False or "auto"', self.leace)
        return dict(
            tol=check_float("tol", self.tol, 0.0), z=check_float("z", self.z, 0.0), cv=check_int("cv", self.cv, 2),
            max_iter=check_int("max_iter", self.max_iter, 1),
            threshold=check_float("threshold", self.threshold, 0.0, 1.0, low_open=True),
            max_directions=None if self.max_directions is None else check_int("max_directions", self.max_directions, 1),
            probes=tuple(dict.fromkeys(probes)), hidden=tuple(check_int("hidden", w, 1) for w in hidden),
            alpha=check_float("alpha", self.alpha, 0.0), leace=self.leace,
            seed=check_int("random_state", self.random_state, 0),
        )

    @staticmethod
    def _make_probes(s, n_classes: int, gamma: float, seed: int, balanced: bool) -> dict[str, Any]:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.svm import SVC

        made = {}
        for name in s["probes"]:
            if name == "logreg":
                made[name] = LogisticRegression(max_iter=2000, class_weight="balanced")
            elif name == "mlp":
                made[name] = MLPClassifier(s["hidden"], solver="lbfgs", alpha=s["alpha"], max_iter=MLP_MAX_ITER,
                                           random_state=seed)
            elif name == "svm" and n_classes == 2:
                made[name] = SVC(gamma=gamma, class_weight="balanced")
            elif name == "hgb":
                # class weights only where the classes are unbalanced: they make the trees several times slower
                made[name] = HistGradientBoostingClassifier(class_weight=None if balanced else "balanced",
                                                            early_stopping=True, random_state=seed)
        return made

    def _round(self, xp: np.ndarray, codes: np.ndarray, folds, projection: np.ndarray, s, n_classes: int, seed: int):
        """One round of cross-fitted probing: ({probe: UAR of its out-of-fold predictions}, {gradient probe: mean over
        the folds of its trace-1 gradient outer product on its fitting rows, within the not yet removed directions})."""
        from privemo.metrics import uar

        d = xp.shape[1]
        counts = np.bincount(codes, minlength=n_classes)
        balanced = counts.max() <= 1.05 * counts.min()
        predictions: dict[str, np.ndarray] = {}
        outer: dict[str, np.ndarray] = {}
        for fold, (fit_rows, held_rows) in enumerate(folds):
            var = xp[fit_rows].var()
            gamma = 1.0 / (d * var) if var > 0 else 1.0  # SVC's gamma="scale"
            fit_codes = codes[fit_rows]
            for name, probe in self._make_probes(s, n_classes, gamma, seed + fold, balanced).items():
                with warnings.catch_warnings():  # a probe stopped at its iteration budget is still a probe
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    if name == "mlp" and not balanced:  # the MLP has no class_weight: balanced sample weights
                        weights = len(fit_codes) / (n_classes * np.bincount(fit_codes, minlength=n_classes))[fit_codes]
                        probe.fit(xp[fit_rows], fit_codes, sample_weight=weights)
                    else:
                        probe.fit(xp[fit_rows], fit_codes)
                predictions.setdefault(name, np.empty(len(codes), dtype=codes.dtype))[held_rows] = probe.predict(
                    xp[held_rows])
                if name not in _GRADIENT_PROBES:
                    continue
                grads = (mlp_logit_gradients(probe, xp[fit_rows]) if name == "mlp"
                         else svc_decision_gradients(probe, xp[fit_rows], gamma))
                grads = grads.reshape(-1, d) @ projection  # within the directions not yet removed
                g = grads.T @ grads
                outer[name] = outer.get(name, 0.0) + (g / np.trace(g) if np.trace(g) > 0 else g) / len(folds)
        return {name: float(uar(codes, p)) for name, p in predictions.items()}, outer

    @staticmethod
    def _leace_directions(x: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
        """Orthonormal columns spanning LEACE's directions of whitened (projected) h: the whitened cross-covariance's
        left singular vectors of singular value above LeaceEraser's default tol (at most n_classes - 1)."""
        onehot = np.eye(n_classes)[codes]
        onehot = onehot[:, 1:] if n_classes == 2 else onehot
        cross = (x - x.mean(axis=0)).T @ (onehot - onehot.mean(axis=0)) / max(len(x) - 1, 1)
        u, sv, _ = np.linalg.svd(cross, full_matrices=False)
        return u[:, : min(int(np.sum(sv > 1e-5)), n_classes - 1)]

    def _encode_classes(self, z: np.ndarray, s: dict) -> tuple[np.ndarray, int]:
        """Checks the attribute ``z`` and sets ``classes_``; returns its class codes and the number of classes."""
        kind = type_of_target(z, input_name="y")
        if kind not in ("binary", "multiclass"):
            raise invalid("y", "class labels of a categorical attribute (ints or strings)",
                          received=f"Unknown label type: {kind!r} (sklearn.utils.multiclass.type_of_target)")
        self.classes_, codes = np.unique(z, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError("GradientSubspaceEraser.fit needs an attribute with at least two classes. "
                             f"Received one class: {self.classes_.tolist()}")
        if n_classes > 2 and "mlp" not in s["probes"]:
            raise invalid("probes", "probes holding 'mlp' for an attribute of more than two classes (the SVM's "
                                    "gradients are used for a binary attribute only)", self.probes)
        return codes, n_classes

    def fit(self, X: Any, y: Any, groups: Any = None) -> "GradientSubspaceEraser":
        """Fit on representations ``X`` (n, d) and attribute labels ``y`` (n,) with at least two classes; ``groups``
        (n,), optional, keeps whole groups (speakers) in one cross-fitting fold."""
        s = self._settings()
        h, z = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        codes, n_classes = self._encode_classes(z, s)
        folds = _folds(codes, groups, s["cv"], s["seed"])
        d = h.shape[1]
        self.mean_ = h.mean(axis=0)
        whiten, unwhiten = _whitening(h, self.mean_)
        x = (h - self.mean_) @ whiten
        basis = np.zeros((d, 0))
        leace_done = s["leace"] is not True and s["leace"] != "auto"  # False: never
        if s["leace"] is True:
            basis, leace_done = self._leace_directions(x, codes, n_classes), True
        noise = s["z"] * chance_uar_se(codes)
        line = 1.0 / n_classes + s["tol"] + noise
        rank_cap = min(d, int(np.linalg.matrix_rank(whiten))) - 1  # keep at least one direction
        self.history_, self.converged_ = [], False  # n_iter_: len(history_)
        for round_ in range(s["max_iter"]):
            projection = np.eye(d) - basis @ basis.T
            xp = x @ projection
            scores, outer = self._round(xp, codes, folds, projection, s, n_classes, s["seed"] + 1000 * round_)
            entry = {"rank": int(basis.shape[1]), "uar": scores, "line": line, "step": "stop", "added": 0}
            self.history_.append(entry)
            if max(scores.values()) <= line:
                self.converged_ = True
                break
            room = rank_cap - basis.shape[1]
            if room < 1:
                break
            if not leace_done and scores.get("logreg", 0.0) > line:
                new, leace_done = self._leace_directions(xp, codes, n_classes)[:, :room], True
                entry["step"] = "leace"
            else:
                # gradient sources: the differentiable probes that read the attribute (all of them if none does)
                sources = [p for p in outer if scores[p] > line] or list(outer)
                values, vectors = np.linalg.eigh(sum(outer[p] for p in sources))
                values, vectors = values[::-1], vectors[:, ::-1]
                cap = min(room, s["max_directions"] or d)
                if max(scores[p] for p in sources) - line < noise:
                    cap = 1  # weak evidence: one direction, then probe again (a noise spectrum has no real eigengap)
                k = _n_directions(values, d - basis.shape[1], s["threshold"], cap)
                new = vectors[:, :k]
                entry["step"] = "gradient"
            entry["added"] = int(new.shape[1])
            if not new.shape[1]:
                break
            basis, _ = np.linalg.qr(np.concatenate([basis, new], axis=1))
        self.n_iter_ = len(self.history_)
        self.basis_ = basis
        self.rank_ = int(basis.shape[1])
        self.matrix_ = unwhiten @ basis @ basis.T @ whiten
        return self


def erasure_layer(eraser: GradientSubspaceEraser, name: str = "h"):
    """The Keras layer applying a fitted eraser: ``privemo.removal.erasure.AffineErasure`` (registered as
    "privemo>AffineErasure", so a model using it saves and reloads as ``.keras``)."""
    from privemo.removal.erasure import AffineErasure

    return AffineErasure.from_eraser(eraser, name=name)


def apply_gradient_erasure(model, eraser: GradientSubspaceEraser, *, layer: str = "h", freeze_encoder: bool = True,
                           name: str | None = None):
    """``privemo.removal.erasure.apply_erasure`` with ``erasure_layer(eraser)`` (fitted on
    ``representation_model(model, layer)``'s output) as the layer "h"; default name
    ``{model.name}_gradient_erasure``."""
    from privemo.removal.erasure import apply_erasure

    return apply_erasure(model, erasure_layer(eraser, name="h"), layer=layer, freeze_encoder=freeze_encoder,
                         name=name or f"{model.name}_gradient_erasure")
