"""Evaluation metrics for binary intent tasks: a functional core (arrays in, floats out).

Like torchmetrics' functional API, every metric is a pure function of ``(y, p)``: ``y`` holds 0/1
labels, ``p`` predicted probabilities (or, for AUC/KS, any score). scikit-learn computes what it has
(ROC AUC, ROC curve for KS, log loss, calibration curve); ECE is written here because scikit-learn
has none (see :func:`ece`).

Undefined values are NaN, not errors: AUC and KS need both classes, and the real sets are small
enough that a task can have no positives in a split.

:func:`bootstrap_ci` resamples *users* when ``groups`` is given: rows of one user are correlated,
so resampling rows pretends there is more independent evidence than there is and gives intervals
that are too narrow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sklearn.calibration import calibration_curve as _sk_calibration_curve
from sklearn.metrics import log_loss as _sk_log_loss
from sklearn.metrics import roc_auc_score, roc_curve

from edgeintent.io import atomic_path

#: Probabilities are clipped to [EPS, 1 - EPS] for the log loss, so a confident miss costs ~16 nats, not inf.
EPS = 1e-7
NAN = float("nan")

Metric = Callable[[np.ndarray, np.ndarray], float]


def _check(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim > 1 and y.size == len(y):
        y = y.reshape(-1)
    if p.ndim > 1 and p.size == len(p):  # (n, 1) model outputs
        p = p.reshape(-1)
    if y.ndim != 1 or p.ndim != 1 or len(y) != len(p):
        raise ValueError(f"labels and probabilities must be 1-D of equal length, got {y.shape} and {p.shape}")
    if y.dtype == bool:
        y = y.astype(np.int8)
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(y)[:5].tolist()}")
    if not np.isfinite(p).all():
        raise ValueError("probabilities contain NaN or inf")
    return y.astype(np.int8, copy=False), p


def _both_classes(y: np.ndarray) -> bool:
    return len(y) > 0 and 0 < int(y.sum()) < len(y)


def auc(y, p) -> float:
    """ROC AUC (ties count one half); NaN unless both classes are present."""
    y, p = _check(y, p)
    if not _both_classes(y):
        return NAN
    return float(roc_auc_score(y, p))


def ks(y, p) -> float:
    """Kolmogorov–Smirnov statistic: the largest TPR − FPR over all thresholds; NaN unless both classes."""
    y, p = _check(y, p)
    if not _both_classes(y):
        return NAN
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def logloss(y, p, eps: float = EPS) -> float:
    """Mean binary cross-entropy (nats) with probabilities clipped to [eps, 1 − eps]; NaN when empty."""
    y, p = _check(y, p)
    if len(y) == 0:
        return NAN
    return float(_sk_log_loss(y, np.clip(p, eps, 1.0 - eps), labels=[0, 1]))


def _bin_ids(p: np.ndarray, n_bins: int) -> np.ndarray:
    # Same binning as sklearn's calibration_curve(strategy="uniform"): bin m is ((m-1)/M, m/M],
    # with 0 in the first bin — also the textbook ECE convention (Guo et al. 2017).
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p, side="left")


def ece(y, p, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins: Σ_b (n_b / N) · |mean(y_b) − mean(p_b)|.

    Written here, not taken from scikit-learn: sklearn has no ECE, and its ``calibration_curve``
    drops empty bins without returning the bin counts the weighting needs. The bins are the same as
    :func:`calibration_curve`'s, so the reliability diagram and this number agree. Since
    n_b · |mean(y_b) − mean(p_b)| = |Σy_b − Σp_b|, the sum needs only two bincounts.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be ≥ 1, got {n_bins}")
    y, p = _check(y, p)
    if len(y) == 0:
        return NAN
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("ECE needs probabilities in [0, 1]")
    b = _bin_ids(p, n_bins)
    sum_y = np.bincount(b, weights=y.astype(np.float64), minlength=n_bins)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    return float(np.abs(sum_y - sum_p).sum() / len(y))


def calibration_curve(y, p, n_bins: int = 10, strategy: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """(fraction of positives, mean probability) per non-empty bin (scikit-learn's): equal-width bins
    (``uniform``, the bins :func:`ece` uses) or equal-count bins (``quantile``, what the plot draws)."""
    y, p = _check(y, p)
    if len(y) == 0:
        return np.empty(0), np.empty(0)
    prob_true, prob_pred = _sk_calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    return prob_true, prob_pred


def positive_rate(y, p=None) -> float:
    """Share of positive labels (``p`` is accepted and ignored so it fits the metric signature)."""
    y = np.asarray(y).reshape(-1)
    return float(y.mean()) if len(y) else NAN


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------

#: Cap on index entries materialised at once (resamples × rows); bounds memory for large sets.
_CHUNK_CELLS = 2_000_000


def _resamples(
    n: int, groups: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Yield ``(idx, rid, k)`` chunks: row indices of ``k`` resamples, concatenated, and each index's resample id.

    Row bootstrap: each resample draws n rows with replacement. Group bootstrap: each resample draws
    as many groups as there are, with replacement, and takes every row of each drawn group (so a
    resample's size varies). The chunk size depends only on the data's shape, so the same seed gives
    the same resamples whatever the metric.
    """
    if groups is None:
        chunk = max(1, _CHUNK_CELLS // max(n, 1))
        done = 0
        while done < n_boot:
            k = min(chunk, n_boot - done)
            idx = rng.integers(0, n, size=(k, n)).reshape(-1)
            rid = np.repeat(np.arange(k), n)
            yield idx, rid, k
            done += k
        return
    _, code = np.unique(groups, return_inverse=True)
    code = code.reshape(-1)
    order = np.argsort(code, kind="stable")  # rows of group g are order[start[g] : start[g] + size[g]]
    size = np.bincount(code)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    n_groups = len(size)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        g = rng.integers(0, n_groups, size=(k, n_groups)).reshape(-1)
        sizes = size[g]
        total = int(sizes.sum())
        # ragged arange: for each drawn group, start[g], start[g] + 1, …, start[g] + size[g] − 1
        offsets = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        idx = order[np.repeat(start[g], sizes) + offsets]
        rid = np.repeat(np.repeat(np.arange(k), n_groups), sizes)
        yield idx, rid, k
        done += k


def _auc_batch(y: np.ndarray, p: np.ndarray, idx: np.ndarray, rid: np.ndarray, k: int) -> np.ndarray:
    """AUC of k resamples at once: per tie group of scores, count positives and negatives per resample.

    AUC = Σ_groups pos_g · (negatives below g + ½ · negatives in g) / (P · N) — the Mann–Whitney
    statistic with ties counted one half, exactly what ``roc_auc_score`` computes.
    """
    _, tie = np.unique(p, return_inverse=True)
    tie = tie.reshape(-1)
    n_ties = int(tie.max()) + 1 if len(tie) else 1
    cell = rid * n_ties + tie[idx]
    tot = np.bincount(cell, minlength=k * n_ties).reshape(k, n_ties).astype(np.float64)
    pos = np.bincount(cell, weights=y[idx].astype(np.float64), minlength=k * n_ties).reshape(k, n_ties)
    neg = tot - pos
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def bootstrap_values(
    metric: Metric, y, p, n_boot: int = 200, seed: int = 0, groups=None
) -> np.ndarray:
    """The metric on each usable resample (resamples with a single class are skipped)."""
    y, p = _check(y, p)
    n = len(y)
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if len(groups) != n:
            raise ValueError(f"groups must have one entry per row ({n}), got {len(groups)}")
    if n == 0 or n_boot <= 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    for idx, rid, k in _resamples(n, groups, n_boot, rng):
        if metric is auc:  # vectorised fast path, same numbers as the generic loop
            values.append(_auc_batch(y, p, idx, rid, k))
            continue
        bounds = np.searchsorted(rid, np.arange(k + 1))
        vals = np.full(k, np.nan)
        for b in range(k):
            sel = idx[bounds[b] : bounds[b + 1]]
            ys = y[sel]
            if _both_classes(ys):
                vals[b] = metric(ys, p[sel])
        values.append(vals)
    out = np.concatenate(values)
    return out[np.isfinite(out)]


def bootstrap_ci(
    metric: Metric, y, p, n_boot: int = 200, alpha: float = 0.05, seed: int = 0, groups=None
) -> tuple[float, float]:
    """Percentile bootstrap (1 − alpha) interval of ``metric``; resamples groups (users) if given.

    Deterministic for a seed. Resamples that hold a single class are skipped; if none is usable
    the interval is (NaN, NaN).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    vals = bootstrap_values(metric, y, p, n_boot=n_boot, seed=seed, groups=groups)
    if len(vals) == 0:
        return NAN, NAN
    lo, hi = np.percentile(vals, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


def task_report(y, p, groups=None, n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> dict:
    """All metrics of one task as a JSON-ready dict (plain floats and ints; NaN where undefined)."""
    y, p = _check(y, p)
    lo, hi = bootstrap_ci(auc, y, p, n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
    out = {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "rate": positive_rate(y),
        "mean_p": float(p.mean()) if len(p) else NAN,
        "auc": auc(y, p),
        "auc_ci": [lo, hi],
        "ks": ks(y, p),
        "logloss": logloss(y, p),
        "ece": ece(y, p) if len(p) and 0.0 <= p.min() and p.max() <= 1.0 else NAN,
    }
    if groups is not None:
        out["groups"] = int(len(np.unique(np.asarray(groups))))
    return out


def report(
    labels: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    observed: dict[str, np.ndarray] | None = None,
    groups=None,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict]:
    """:func:`task_report` per task in ``probs``, over the rows whose label is observed.

    A label whose horizon runs past the end of the data is unobserved (``observed[task]`` False)
    and is left out rather than counted as a negative.
    """
    out: dict[str, dict] = {}
    for task, p in probs.items():
        if task not in labels:
            raise ValueError(f"no labels for task {task!r} (labels have {sorted(labels)})")
        y = np.asarray(labels[task]).reshape(-1)
        p = np.asarray(p)
        if p.ndim > 1 and p.size == len(p):  # (n, 1) model outputs
            p = p.reshape(-1)
        if p.shape != y.shape:
            raise ValueError(f"probs[{task!r}] has shape {p.shape}, labels {y.shape}")
        keep = np.ones(len(y), bool) if observed is None or task not in observed else np.asarray(observed[task], bool)
        if keep.shape != y.shape:
            raise ValueError(f"observed[{task!r}] has shape {keep.shape}, labels {y.shape}")
        g = None if groups is None else np.asarray(groups).reshape(-1)[keep]
        out[task] = task_report(y[keep], p[keep], groups=g, n_boot=n_boot, seed=seed, alpha=alpha)
    return out


def plot_roc_calibration(
    y_by_task: dict[str, np.ndarray], p_by_task: dict[str, np.ndarray], path: str | Path, n_bins: int = 10
) -> Path:
    """One PNG: per task a column with the ROC curve (top) and the reliability diagram (bottom).

    The reliability diagram uses equal-count bins (each point holds about ``len(y) / n_bins`` predictions),
    so a rare event's predictions, which sit near 0, spread over the curve instead of falling into one
    or two equal-width bins; its axes end a little past the largest point, and the grey histogram shows
    where the predictions lie. The legend's ECE is :func:`ece`'s (equal-width bins, as ``eval`` reports)."""
    # matplotlib is imported here: it is slow to import and only plotting needs it. Figure +
    # the Agg canvas avoid pyplot's global state, so no backend switch is needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    tasks = list(p_by_task)
    cols = max(1, len(tasks))
    fig = Figure(figsize=(3.6 * cols, 7.0), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, cols, squeeze=False)
    for j, task in enumerate(tasks):
        y, p = _check(y_by_task[task], p_by_task[task])
        roc_ax, cal_ax = axes[0][j], axes[1][j]
        roc_ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        if _both_classes(y):
            fpr, tpr, _ = roc_curve(y, p)
            roc_ax.plot(fpr, tpr, lw=1.5, label=f"AUC {auc(y, p):.3f}  KS {ks(y, p):.3f}")
            roc_ax.legend(loc="lower right", fontsize=8)
        else:
            roc_ax.text(0.5, 0.5, "one class only:\nROC undefined", ha="center", va="center")
        roc_ax.set(title=f"{task} (n={len(y)}, pos={int(y.sum())})", xlabel="FPR", ylabel="TPR", xlim=(0, 1), ylim=(0, 1))
        cal_ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        top = 1.0
        if len(y) and p.min() >= 0.0 and p.max() <= 1.0:
            frac, mean_p = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
            top = min(1.0, max(0.05, 1.15 * float(max(frac.max(), mean_p.max()))))
            cal_ax.plot(mean_p, frac, marker="o", lw=1.5, label=f"ECE {ece(y, p, n_bins):.3f}")
            cal_ax.legend(loc="upper left", fontsize=8)
            hist = cal_ax.twinx()
            hist.hist(p, bins=30, range=(0, top), alpha=0.2, color="grey")
            hist.set_yticks([])
        cal_ax.set(xlabel=f"mean predicted probability\n({n_bins} equal-count bins)", ylabel="fraction positive",
                   xlim=(0, top), ylim=(0, top))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


__all__ = [
    "auc",
    "bootstrap_ci",
    "bootstrap_values",
    "calibration_curve",
    "ece",
    "ks",
    "logloss",
    "plot_roc_calibration",
    "positive_rate",
    "report",
    "task_report",
]
