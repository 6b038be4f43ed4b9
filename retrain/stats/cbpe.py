"""Performance without labels: confidence-based performance estimation (CBPE).

A classifier whose probabilities are calibrated says how often it is right: a row scored 0.8
for the positive class is positive four times in five. CBPE (as NannyML describes it) turns the
calibrated probabilities of unlabeled rows into the *expected* confusion matrix and from it
the expected accuracy, precision, recall and F1; the expected ROC AUC comes from the ROC curve
each row draws with weight p as a positive and 1 - p as a negative.

* **Calibration** (:func:`fit_calibration`) is an isotonic regression of the labels on the
  model's scores, fitted on the version's holdout when it is trained and stored with it as
  plain arrays (step points; no pickle). For several classes, one per class (one-vs-rest), the
  calibrated rows renormalised to sum to one.
* **The estimate** (:func:`estimate_performance`) is CBPE's expected metric (a ratio of
  expectations).
* **Its interval** is the spread of the metric the labels could realise: the labels are drawn
  many times from the calibrated probabilities (each row its own Bernoulli or categorical
  draw) and the metric computed on each draw; the interval holds the central ``confidence``
  share of those. The draws are shared among the calibration and its bootstrap refits (the
  holdout resampled, ``BOOTSTRAP_CALIBRATIONS`` of them, stored with it), so the interval
  holds both the sampling error of a chunk of this size and the calibration's own error on a
  holdout of finite size. It does not know of a calibration that no longer holds (a change in
  P(y | x), "concept drift", which no label-free method can see).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrain.stats.metrics import binary_auc_weighted

ESTIMATED_METRICS = {"binary": ("roc_auc", "accuracy", "precision", "recall", "f1"),
                     "multiclass": ("accuracy", "macro_f1", "roc_auc_ovr")}
MAX_DRAW_CELLS = 20_000_000  # draws x rows held at once
BOOTSTRAP_CALIBRATIONS = 19  # refits on resampled holdouts, besides the calibration itself


@dataclass(frozen=True)
class Calibration:
    """Isotonic step functions: one (the positive class's) for a binary model, one per class
    for a multiclass one. ``points[c]`` is ``(scores, calibrated)``, increasing scores."""

    task: str
    points: tuple[tuple[np.ndarray, np.ndarray], ...]
    # The same calibration refitted on resampled holdouts (each a ``points``): its error.
    bootstrap: tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...] = ()

    def apply(self, scores: np.ndarray, points=None) -> np.ndarray:
        """Calibrated probabilities of ``scores`` (the model's: one per row for binary, a row
        per row for multiclass); ``points``: one of ``bootstrap`` instead of the fit's own."""
        points = self.points if points is None else points
        scores = np.asarray(scores, dtype=np.float64)
        if self.task == "binary":
            x, y = points[0]
            return np.clip(np.interp(scores.reshape(-1), x, y), 0.0, 1.0)
        if scores.ndim != 2 or scores.shape[1] != len(points):
            raise ValueError(f"expected {len(points)} scores per row, got shape {scores.shape}")
        out = np.column_stack([np.interp(scores[:, c], x, y)
                               for c, (x, y) in enumerate(points)])
        out = np.clip(out, 0.0, 1.0)
        total = out.sum(axis=1, keepdims=True)
        # A row no class claims keeps the model's own probabilities.
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), scores)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numeric arrays (an ``.npz`` entry of the artifact; read without pickle)."""
        out: dict[str, np.ndarray] = {"calibration_task": np.array(self.task)}
        for b, points in enumerate((self.points, *self.bootstrap)):
            for c, (x, y) in enumerate(points):
                out[f"calibration_x_{b}_{c}"] = x
                out[f"calibration_y_{b}_{c}"] = y
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "Calibration | None":
        if "calibration_task" not in arrays:
            return None
        fits, b = [], 0
        while f"calibration_x_{b}_0" in arrays:
            points, c = [], 0
            while f"calibration_x_{b}_{c}" in arrays:
                points.append((np.asarray(arrays[f"calibration_x_{b}_{c}"], dtype=np.float64),
                               np.asarray(arrays[f"calibration_y_{b}_{c}"], dtype=np.float64)))
                c += 1
            fits.append(tuple(points))
            b += 1
        return cls(str(arrays["calibration_task"]), fits[0], tuple(fits[1:]))


ROWS_PER_BIN = 100  # the calibration's resolution: labels averaged over this many rows at least


def _isotonic(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An increasing map from score to probability: isotonic regression of the labels'
    means over quantile bins of the scores (``ROWS_PER_BIN`` rows each), joined linearly
    between the bins' mean scores. Isotonic regression on single rows follows their noise
    (steps that make the probabilities more extreme than they are, and the estimated ROC AUC
    too high); on bins it does not."""
    # Late: scikit-learn takes seconds to import; only training and estimation need it.
    from sklearn.isotonic import IsotonicRegression
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], positive[order].astype(np.float64)
    bins = max(1, min(len(s) // ROWS_PER_BIN, 200))
    edges = np.linspace(0, len(s), bins + 1).astype(int)
    centres = np.array([s[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    means = np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    weights = np.diff(edges).astype(np.float64)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(
        centres, means, sample_weight=weights)
    return np.asarray(centres, dtype=np.float64), np.asarray(fitted, dtype=np.float64)


def _fit_points(scores: np.ndarray, labels: np.ndarray, task: str):
    if task == "binary":
        return (_isotonic(scores.reshape(-1), labels == 1),)
    return tuple(_isotonic(scores[:, c], labels == c) for c in range(scores.shape[1]))


def fit_calibration(scores: np.ndarray, labels: np.ndarray, task: str,
                    bootstrap: int = BOOTSTRAP_CALIBRATIONS, seed: int = 0) -> Calibration:
    """Isotonic calibration of a classifier's ``scores`` on labeled rows (its holdout), and
    ``bootstrap`` refits on resampled rows; ``labels`` 0/1 (binary) or class codes
    (multiclass; -1, a class unknown to the model, counts against every class)."""
    if task not in ESTIMATED_METRICS:
        raise ValueError(f"performance estimation is for classifiers, not a {task} model")
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = labels.shape[0]
    refits = []
    for _ in range(bootstrap):
        idx = rng.integers(0, n, n)
        refits.append(_fit_points(scores[idx], labels[idx], task))
    return Calibration(task, _fit_points(scores, labels, task), tuple(refits))


@dataclass(frozen=True)
class Estimate:
    metric: str
    estimate: float
    interval: tuple[float, float]

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "interval": list(self.interval)}


# Expected metrics (CBPE) -------------------------------------------------------------------

def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _expected_binary(p: np.ndarray, scores: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = float(p[predicted].sum())
    fp = float((1 - p[predicted]).sum())
    fn = float(p[~predicted].sum())
    tn = float((1 - p[~predicted]).sum())
    n = len(p)
    # Each row is a positive with weight p and a negative with weight 1 - p.
    y = np.concatenate([np.ones(n), np.zeros(n)])
    auc = binary_auc_weighted(y, np.concatenate([scores, scores]),
                              np.concatenate([p, 1 - p])[None, :])[0]
    return {"roc_auc": float(auc), "accuracy": (tp + tn) / n, "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def _expected_multiclass(p: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    n, k = p.shape
    predicted = scores.argmax(axis=1)
    f1s, aucs = [], []
    for c in range(k):
        mine = predicted == c
        tp, fp, fn = p[mine, c].sum(), (1 - p[mine, c]).sum(), p[~mine, c].sum()
        if 2 * tp + fp + fn > 0:
            f1s.append(2 * tp / (2 * tp + fp + fn))
        y = np.concatenate([np.ones(n), np.zeros(n)])
        auc = binary_auc_weighted(y, np.concatenate([scores[:, c], scores[:, c]]),
                                  np.concatenate([p[:, c], 1 - p[:, c]])[None, :])[0]
        if np.isfinite(auc):
            aucs.append(auc)
    return {"accuracy": float(p[np.arange(n), predicted].mean()),
            "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
            "roc_auc_ovr": float(np.mean(aucs)) if aucs else float("nan")}


# Realised metrics of drawn labels ----------------------------------------------------------

def _average_ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata  # late: SciPy is only needed by estimation here
    return rankdata(values)


def _auc_of_draws(y: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of 0/1 labels ``y`` (draws x rows) for fixed scores (their average
    ``ranks``): Mann-Whitney's U over the positives' ranks."""
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        return (y @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0)


def _drawn_binary(p, scores, predicted, draws, rng) -> dict[str, np.ndarray]:
    """``p``: calibrated probabilities, one row per calibration (draws are shared out)."""
    rows = np.arange(draws) % p.shape[0]
    y = rng.random((draws, p.shape[1])) < p[rows]  # bool, draws x rows
    tp = (y & predicted).sum(axis=1).astype(np.float64)
    fp = (~y & predicted).sum(axis=1)
    fn = (y & ~predicted).sum(axis=1)
    correct = (y == predicted).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"roc_auc": _auc_of_draws(y.astype(np.float64), _average_ranks(scores)),
                "accuracy": correct, "precision": tp / (tp + fp), "recall": tp / (tp + fn),
                "f1": 2 * tp / (2 * tp + fp + fn)}


def _drawn_multiclass(p, scores, draws, rng) -> dict[str, np.ndarray]:
    """``p``: calibrated probabilities, calibrations x rows x classes (draws are shared out)."""
    _, n, k = p.shape
    cumulative = np.cumsum(p, axis=2)
    cumulative[:, :, -1] = 1.0
    rows = np.arange(draws) % p.shape[0]
    u = rng.random((draws, n))
    y = (u[:, :, None] > cumulative[rows]).sum(axis=2)  # draws x rows, class codes
    predicted = scores.argmax(axis=1)
    f1s, aucs = [], []
    for c in range(k):
        yc, pc = y == c, predicted == c
        tp = (yc & pc).sum(axis=1).astype(np.float64)
        fp, fn = (~yc & pc).sum(axis=1), (yc & ~pc).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1s.append(np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan))
        aucs.append(_auc_of_draws(yc.astype(np.float64), _average_ranks(scores[:, c])))
    with np.errstate(invalid="ignore"):
        return {"accuracy": (y == predicted).mean(axis=1),
                "macro_f1": np.nanmean(np.vstack(f1s), axis=0),
                "roc_auc_ovr": np.nanmean(np.vstack(aucs), axis=0)}


def estimate_performance(scores: np.ndarray, calibration: Calibration, *,
                         confidence: float = 0.95, draws: int = 400, seed: int = 0,
                         threshold: float = 0.5) -> dict[str, Estimate]:
    """The estimated metrics of a classifier on unlabeled rows it scored (``scores`` as
    ``TrainedModel.predict_scores`` gives them), each with the interval in which the realised
    metric falls with probability ``confidence`` if the calibration holds."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    expected, drawn = expected_and_drawn(scores, calibration, draws=draws, seed=seed,
                                         threshold=threshold)
    tail = (1 - confidence) / 2
    out = {}
    for metric in ESTIMATED_METRICS[calibration.task]:
        values = drawn[metric][np.isfinite(drawn[metric])]
        if values.size:
            lo, hi = np.quantile(values, [tail, 1 - tail])
            interval = (float(min(lo, expected[metric])), float(max(hi, expected[metric])))
        else:
            interval = (float("nan"), float("nan"))
        out[metric] = Estimate(metric, float(expected[metric]), interval)
    return out


def expected_and_drawn(scores: np.ndarray, calibration: Calibration, *, draws: int = 400,
                       seed: int = 0, threshold: float = 0.5
                       ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """CBPE's expected metrics, and the metrics of ``draws`` label sets drawn from the
    calibrated probabilities (what an interval, or a combination with realised metrics,
    is made of)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if n == 0:
        raise ValueError("no rows to estimate on")
    p = calibration.apply(scores)
    variants = np.stack([p, *(calibration.apply(scores, points) for points in calibration.bootstrap)])
    draws = int(max(50, min(draws, MAX_DRAW_CELLS // max(1, p.size))))
    rng = np.random.default_rng(seed)
    if calibration.task == "binary":
        scores = scores.reshape(-1)
        predicted = scores >= threshold
        expected = _expected_binary(p, scores, predicted)
        drawn = _drawn_binary(variants, scores, predicted, draws, rng)
    else:
        expected = _expected_multiclass(p, scores)
        drawn = _drawn_multiclass(variants, scores, draws, rng)
    return expected, drawn
