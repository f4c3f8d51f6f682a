"""``gbdt``: the papers' gradient-boosted-trees baseline, on per-window aggregates.

scikit-learn ``HistGradientBoostingClassifier`` per task on per-window aggregates
(``aggregate_features``; the list is in its docstring). Trained only on rows whose label is observed,
with ``class_weight="balanced"``, early stopping on the validation samples when given. Balanced class
weights inflate the positives' odds, so after fitting the forest's baseline is shifted by the one
constant that makes the mean predicted probability on the training rows equal their positive rate
(intercept recalibration; the boosted trees are too shrunk for the exact −log(n_neg / n_pos) prior
correction the torch trainer applies): probabilities are calibrated again, the ranking is unchanged.
The fitted trees are kept as plain numeric arrays (``state()``, safetensors-ready, no pickle) and
prediction walks them in numpy (vectorised over samples and trees, iterative over depth), summing tree
outputs in sklearn's order, so the logits equal ``decision_function`` plus that shift.

Options (``create_model("gbdt", spec, **options)``): ``max_iter`` (100), ``learning_rate`` (0.05),
``max_leaf_nodes`` (7), ``min_samples_leaf`` (40), ``l2_regularization`` (1.0), ``max_bins`` (63),
``n_iter_no_change`` (20) and ``balanced`` (True: balanced class weights and the intercept shift).
Not a torch model: it declares no exported signature and is not exported.

How it compares with DIPN and the ``rnn`` baseline, and the command that measures it: ``docs/models.md``.
"""

from __future__ import annotations

import inspect

import numpy as np

from edgeintent.errors import ConfigError, DataError, SpecError
from edgeintent.toolkit.features import FeatureSpec, Samples
from edgeintent.toolkit.models import register_model


#: categorical features whose ids are counted, per stream
COUNTED: dict[str, tuple[str, ...]] = {"gesture": ("kind", "page"), "click": ("widget", "page"), "cloud": ("action",)}
#: gesture bucket features summarised by mean / std / min / max of their ids
GESTURE_STATS = ("speed", "duration", "distance")
#: shares of the window's events at most this many minutes old
RECENT_MINUTES = (1, 5, 30)
#: the "recent" scope (≈ the last two page visits): events at most this many seconds old
RECENT_S = 60


def aggregate_names(spec: FeatureSpec, streams: tuple[str, ...], offer: bool) -> list[str]:
    """Names of the columns ``aggregate_features`` returns, in order."""
    names: list[str] = []
    for s in streams:
        feats = {f.name: f for f in spec.features[s]}
        names += [f"{s}.count", f"{s}.recency_log_s"] + [f"{s}.share_last_{m}min" for m in RECENT_MINUTES]
        for scope in ("", f"last_{RECENT_S}s."):
            if scope:
                names.append(f"{s}.{scope}count")
            for name in COUNTED.get(s, ()):
                values = ["<unk>"] + [str(v) for v in feats[name].vocab]
                names += [f"{s}.{scope}{name}={v}" for v in values]
            if s == "gesture":
                stats = ("mean", "std", "min", "max")
                names += [f"{s}.{scope}{name}_id.{stat}" for name in GESTURE_STATS for stat in stats]
    if offer:
        names.append("offer")
    return names


def has_offer(samples: Samples) -> bool:
    return samples.extra is not None and "offer" in samples.extra.column_names


def _id_counts(ids: np.ndarray, mask: np.ndarray, cardinality: int) -> np.ndarray:
    """(n, cardinality − 1) counts of ids 1 … cardinality − 1 among the masked events of each row."""
    n = ids.shape[0]
    ids = np.clip(np.where(mask, ids, 0).astype(np.int64), 0, cardinality - 1)
    flat = np.arange(n)[:, None] * cardinality + ids
    counts = np.bincount(flat.ravel(), minlength=n * cardinality).reshape(n, cardinality)
    return counts[:, 1:].astype(np.float64)  # id 0 is padding (and masked-out events)


def _id_stats(values: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """mean, std, min, max of ``values`` (n, T) over the masked events of each row; NaN if none."""
    c = mask.sum(axis=1)
    d = np.maximum(c, 1).astype(np.float64)
    mean = np.where(mask, values, 0.0).sum(axis=1) / d
    std = np.sqrt((np.where(mask, values - mean[:, None], 0.0) ** 2).sum(axis=1) / d)
    vmin = np.where(mask, values, np.inf).min(axis=1, initial=np.inf)
    vmax = np.where(mask, values, -np.inf).max(axis=1, initial=-np.inf)
    return [np.where(c > 0, v, np.nan) for v in (mean, std, vmin, vmax)]


def aggregate_features(samples: Samples, spec: FeatureSpec, streams: tuple[str, ...], offer: bool) -> np.ndarray:
    """(n, n_aggregates) float64 per-window aggregates (NaN where undefined), vectorised numpy.

    Per stream, in ``streams`` order (the window holds the last ``max_len`` events before t):

    - ``count``: number of events in the window;
    - ``recency_log_s``: log(1 + age of the most recent event in seconds); NaN without events;
    - ``share_last_{1,5,30}min``: share of the window's events at most 1 / 5 / 30 minutes old;
      NaN without events;
    - ``{feature}={value}``: counts of every id of the categorical features in the window, ``<unk>``
      (id 1) then the FeatureSpec vocabulary in order (ids 2, 3, …): gesture kind and page, click
      widget and page, cloud action;
    - gesture only, ``{speed,duration,distance}_id.{mean,std,min,max}``: statistics of the bucket ids
      over the window's gestures; NaN without gestures;
    - ``last_60s.count``, ``last_60s.{feature}={value}`` and (gesture) ``last_60s.*_id.*``: the same
      counts and statistics over the events at most ``RECENT_S`` = 60 s old (about the last two page
      visits, where the user's current intent shows).

    Then ``offer``: the coupon amount offered at the decision point (``samples.extra["offer"]``; 0
    when the samples carry no offer column), if the model was fitted with one.

    ``aggregate_names`` gives the column names; their number depends on the vocabulary sizes (with
    the simulator's: 56 for gesture, 48 for click, 16 for cloud, plus the offer).
    """
    n = len(samples)
    cols: list[np.ndarray] = []
    for s in streams:
        if s not in samples.x:
            raise DataError(f"the samples have no stream {s!r} (they have {', '.join(samples.x)})")
        x = samples.x[s]
        length = np.asarray(samples.length[s], dtype=np.int64)
        age = np.asarray(samples.age_ms[s], dtype=np.float64)
        mask = np.arange(x.shape[1])[None, :] < length[:, None]
        has = length > 0
        cnt = length.astype(np.float64)
        last_age = np.take_along_axis(age, np.maximum(length - 1, 0)[:, None], axis=1)[:, 0]
        cols.append(cnt)
        cols.append(np.where(has, np.log1p(np.maximum(last_age, 0.0) / 1000.0), np.nan))
        for m in RECENT_MINUTES:
            within = ((age <= m * 60_000) & mask).sum(axis=1)
            cols.append(np.where(has, within / np.maximum(cnt, 1.0), np.nan))
        feats = [f.name for f in spec.features[s]]
        recent = mask & (age <= RECENT_S * 1000)
        for scope in (mask, recent):
            if scope is recent:
                cols.append(recent.sum(axis=1).astype(np.float64))
            for name in COUNTED.get(s, ()):
                j = feats.index(name)
                cols.append(_id_counts(x[:, :, j], scope, spec.features[s][j].cardinality))
            if s == "gesture":
                for name in GESTURE_STATS:
                    cols += _id_stats(x[:, :, feats.index(name)].astype(np.float64), scope)
    if offer:
        if has_offer(samples):
            cols.append(samples.extra.column("offer").to_numpy(zero_copy_only=False).astype(np.float64))
        else:
            cols.append(np.zeros(n))
    cols = [c[:, None] if c.ndim == 1 else c for c in cols]
    return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float64)


#: per-node fields kept from sklearn's PREDICTOR_RECORD_DTYPE, with the dtype they are stored as
NODE_FIELDS = {
    "value": np.float64,
    "feature_idx": np.int64,
    "num_threshold": np.float64,
    "missing_go_to_left": np.uint8,
    "left": np.int64,
    "right": np.int64,
    "is_leaf": np.uint8,
}


def intercept_shift(logits: np.ndarray, rate: float) -> float:
    """The constant b with mean(sigmoid(logits + b)) = rate (bisection; the mean is monotone in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-np.clip(logits + mid, -60, 60)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class _Forest:
    """The trees of one binary HistGradientBoostingClassifier as flat numeric arrays.

    All trees' nodes are concatenated; ``left`` / ``right`` are global node indices and tree ``k``
    starts at node ``roots[k]``. ``predict`` = baseline + Σ_k tree_k(x), added tree by tree like
    sklearn's ``_raw_predict`` does.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.a = {k: np.asarray(arrays[k], dtype=dt) for k, dt in NODE_FIELDS.items()}
        self.roots = np.asarray(arrays["roots"], dtype=np.int64)
        self.baseline = np.asarray(arrays["baseline"], dtype=np.float64).reshape(-1)
        if self.baseline.shape != (1,):
            raise SpecError(f"gbdt state: baseline must hold one value, got {self.baseline.shape}")
        n_nodes = len(self.a["value"])
        if any(len(v) != n_nodes for v in self.a.values()):
            raise SpecError("gbdt state: node arrays of different lengths")
        inner = self.a["is_leaf"] == 0
        for k in ("left", "right"):
            if inner.any() and (self.a[k][inner].min() < 0 or self.a[k][inner].max() >= n_nodes):
                raise SpecError(f"gbdt state: {k} child index out of range")
        if len(self.roots) and (self.roots.min() < 0 or self.roots.max() >= max(n_nodes, 1)):
            raise SpecError("gbdt state: tree root index out of range")

    @classmethod
    def from_sklearn(cls, clf) -> _Forest:
        fields: dict[str, list[np.ndarray]] = {k: [] for k in NODE_FIELDS}
        roots = []
        offset = 0
        for predictors_of_iteration in clf._predictors:
            if len(predictors_of_iteration) != 1:
                raise ValueError("gbdt: expected one tree per iteration (binary classification)")
            nodes = predictors_of_iteration[0].nodes
            if nodes["is_categorical"].any():  # pragma: no cover - no categorical features are declared
                raise ValueError("gbdt: categorical splits are not supported")
            roots.append(offset)
            for k, dt in NODE_FIELDS.items():
                v = nodes[k].astype(dt)
                if k in ("left", "right"):
                    v = np.where(nodes["is_leaf"] == 0, v + offset, 0)
                fields[k].append(v)
            offset += len(nodes)
        arrays = {k: (np.concatenate(v) if v else np.zeros(0, NODE_FIELDS[k])) for k, v in fields.items()}
        arrays["roots"] = np.asarray(roots, dtype=np.int64)
        arrays["baseline"] = np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(-1)
        return cls(arrays)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.ascontiguousarray(v) for k, v in self.a.items()}
        out["roots"] = np.ascontiguousarray(self.roots)
        out["baseline"] = np.ascontiguousarray(self.baseline)
        return out

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """(n, n_trees) value of the leaf each sample reaches in each tree."""
        a = self.a
        n = X.shape[0]
        node = np.broadcast_to(self.roots[None, :], (n, self.n_trees)).copy()
        rows = np.arange(n)[:, None]
        while True:
            inner = a["is_leaf"][node] == 0
            if not inner.any():
                break
            f = a["feature_idx"][node]
            v = X[rows, f]
            nan = np.isnan(v)
            go_left = np.where(nan, a["missing_go_to_left"][node] != 0, v <= a["num_threshold"][node])
            nxt = np.where(go_left, a["left"][node], a["right"][node])
            node = np.where(inner, nxt, node)
        return a["value"][node]

    def predict(self, X: np.ndarray, chunk: int = 16384) -> np.ndarray:
        out = np.zeros(X.shape[0], dtype=np.float64)
        out += self.baseline[0]
        for start in range(0, X.shape[0], chunk):
            leaves = self.leaf_values(X[start : start + chunk])
            acc = out[start : start + chunk]
            for k in range(self.n_trees):  # tree by tree, as sklearn sums them
                acc += leaves[:, k]
        return out


@register_model(
    "gbdt", kind="sklearn", tasks=("buy_rt", "buy_long"),
    description="baseline: GBDT on window aggregates",
    max_iter=100, learning_rate=0.05, max_leaf_nodes=7, min_samples_leaf=40, l2_regularization=1.0,
    max_bins=63, n_iter_no_change=20, balanced=True,
)  # fmt: skip
class GBDT:
    """Per-task ``HistGradientBoostingClassifier`` on ``aggregate_features``; predicts with its own
    numpy tree walker from plain arrays (``state()`` / ``from_state``)."""

    kind = "sklearn"

    def __init__(
        self, spec: FeatureSpec, streams: tuple[str, ...], tasks: tuple[str, ...], max_iter: int = 100,
        learning_rate: float = 0.05, max_leaf_nodes: int = 7, min_samples_leaf: int = 40,
        l2_regularization: float = 1.0, max_bins: int = 63, n_iter_no_change: int = 20, balanced: bool = True,
    ) -> None:  # fmt: skip
        if max_iter < 1 or max_leaf_nodes < 2 or min_samples_leaf < 1 or not 2 <= max_bins <= 255:
            raise ConfigError(
                "gbdt: need max_iter ≥ 1, max_leaf_nodes ≥ 2, min_samples_leaf ≥ 1 and max_bins in 2..255"
            )
        if learning_rate <= 0:
            raise ConfigError(f"gbdt: learning_rate must be positive, got {learning_rate}")
        self.spec = spec
        self.streams = tuple(streams)
        self.tasks = tuple(tasks)
        self.hparams = dict(
            max_iter=int(max_iter), learning_rate=float(learning_rate), max_leaf_nodes=int(max_leaf_nodes),
            min_samples_leaf=int(min_samples_leaf), l2_regularization=float(l2_regularization), max_bins=int(max_bins),
            n_iter_no_change=int(n_iter_no_change), balanced=bool(balanced),
        )  # fmt: skip
        self.offer = False
        self.seed: int | None = None
        self.forests: dict[str, _Forest] = {}
        self.classifiers: dict = {}  # the sklearn estimators of the last fit (not serialised)

    # -- features -------------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        return aggregate_names(self.spec, self.streams, self.offer)

    def features(self, samples: Samples) -> np.ndarray:
        return aggregate_features(samples, self.spec, self.streams, self.offer)

    # -- training --------------------------------------------------------------------------------
    def _classifier(self, seed: int, early: bool):
        from sklearn.ensemble import HistGradientBoostingClassifier

        h = self.hparams
        return HistGradientBoostingClassifier(
            learning_rate=h["learning_rate"], max_iter=h["max_iter"], max_leaf_nodes=h["max_leaf_nodes"],
            min_samples_leaf=h["min_samples_leaf"], l2_regularization=h["l2_regularization"],
            max_bins=h["max_bins"], categorical_features=None, early_stopping=early,
            n_iter_no_change=h["n_iter_no_change"], validation_fraction=None, scoring="loss",
            class_weight="balanced" if h["balanced"] else None, random_state=seed,
        )  # fmt: skip

    def fit(self, train: Samples, valid: Samples | None = None, seed: int = 0, n_threads: int | None = 1) -> GBDT:
        """Fit one classifier per task on the rows of ``train`` whose label is observed.

        With ``valid``, each task stops early on the validation log-loss (its observed rows); without
        it, every classifier runs ``max_iter`` iterations. ``n_threads`` caps scikit-learn's OpenMP
        threads (None: all cores). The default is 1: on a small, shared host more OpenMP threads
        fight the other processes for the cores and fit slower, not faster (timings in
        ``docs/models.md``); the trees do not depend on it.
        """
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=n_threads, user_api="openmp"):
            return self._fit(train, valid, seed)

    def _fit(self, train: Samples, valid: Samples | None, seed: int) -> GBDT:
        self.offer = has_offer(train)
        self.seed = int(seed)
        X = self.features(train)
        # scikit-learn cannot bin a column with no value at all (e.g. the recency of a stream that is
        # empty in every training window): make it constant, so no tree ever splits on it
        X[:, np.isnan(X).all(axis=0)] = 0.0
        Xv = self.features(valid) if valid is not None else None
        forests, classifiers = {}, {}
        for task in self.tasks:
            if task not in train.labels:
                have = ", ".join(train.labels)
                raise DataError(f"gbdt: the training samples have no label {task!r} (they have {have})")
            obs = np.asarray(train.observed[task], bool)
            y = np.asarray(train.labels[task], np.int64)[obs]
            if len(np.unique(y)) < 2:
                raise DataError(
                    f"gbdt: task {task!r} needs both classes among the {int(obs.sum())} observed training rows "
                    f"(got only {'positives' if y.size and y[0] == 1 else 'negatives'}); use more data"
                )
            kwargs = {}
            early = False
            if Xv is not None and task in valid.labels:
                vobs = np.asarray(valid.observed[task], bool)
                if vobs.any():
                    early = True
                    kwargs = {"X_val": Xv[vobs], "y_val": np.asarray(valid.labels[task], np.int64)[vobs]}
            clf = self._classifier(seed, early)
            if kwargs and "X_val" not in inspect.signature(clf.fit).parameters:  # scikit-learn < 1.7
                raise ConfigError("gbdt: early stopping on given validation samples needs scikit-learn ≥ 1.7")
            clf.fit(X[obs], y, **kwargs)
            if list(clf.classes_) != [0, 1]:  # pragma: no cover - guarded above
                raise DataError(f"gbdt: task {task!r} labels must be 0/1, got {clf.classes_}")
            forest = _Forest.from_sklearn(clf)
            if self.hparams["balanced"]:
                forest.baseline = forest.baseline + intercept_shift(forest.predict(X[obs]), float(y.mean()))
            forests[task] = forest
            classifiers[task] = clf
        self.forests, self.classifiers = forests, classifiers
        return self

    # -- prediction ------------------------------------------------------------------------------
    def predict_logits(self, samples: Samples) -> dict[str, np.ndarray]:
        """Per task, the logit of the positive class (sklearn's ``decision_function`` + the prior correction)."""
        if not self.forests:
            raise ConfigError("gbdt: the model is not fitted")
        X = self.features(samples)
        return {t: self.forests[t].predict(X) for t in self.tasks}

    def predict_proba(self, samples: Samples) -> dict[str, np.ndarray]:
        from scipy.special import expit

        return {t: expit(z) for t, z in self.predict_logits(samples).items()}

    # -- persistence -----------------------------------------------------------------------------
    def config(self) -> dict:
        name = getattr(self, "registry_name", "gbdt")
        cfg = {"name": name, "streams": list(self.streams), "tasks": list(self.tasks), **self.hparams}
        cfg["offer"] = self.offer
        cfg["seed"] = self.seed
        cfg["features"] = self.feature_names()
        cfg["n_trees"] = {t: f.n_trees for t, f in self.forests.items()}
        return cfg

    def state(self) -> dict[str, np.ndarray]:
        """Everything prediction needs as plain numeric arrays, ``"{task}.{field}"`` (safetensors-ready)."""
        if not self.forests:
            raise ConfigError("gbdt: the model is not fitted")
        return {f"{t}.{k}": v for t, forest in self.forests.items() for k, v in forest.arrays().items()}

    @classmethod
    def from_state(cls, config: dict, state: dict[str, np.ndarray], spec: FeatureSpec) -> GBDT:
        """Rebuild a fitted model from ``config()`` and ``state()`` without pickle."""
        absent = [k for k in ("streams", "tasks") if k not in config]
        if absent:
            raise ConfigError(f"gbdt.from_state: the model config has no {absent[0]!r}")
        params = inspect.signature(cls.__init__).parameters
        options = {k: config[k] for k in params if k in config and k not in ("self", "spec", "streams", "tasks")}
        model = cls(spec, tuple(config["streams"]), tuple(config["tasks"]), **options)
        model.registry_name = config.get("name", "gbdt")
        model.offer = bool(config.get("offer", False))
        model.seed = config.get("seed")
        missing = [s for s in model.streams if s not in spec.features]
        if missing:
            raise SpecError(f"gbdt: the FeatureSpec has no stream {missing[0]!r} the model was trained on")
        expected = model.feature_names()
        if "features" in config and list(config["features"]) != expected:
            raise SpecError(
                f"gbdt: the FeatureSpec gives {len(expected)} aggregates but the model was trained on "
                f"{len(config['features'])} different ones (was the spec refitted?)"
            )
        forests = {}
        for t in model.tasks:
            keys = list(NODE_FIELDS) + ["roots", "baseline"]
            absent = [k for k in keys if f"{t}.{k}" not in state]
            if absent:
                raise SpecError(f"gbdt: state has no array {t}.{absent[0]}")
            forest = _Forest({k: state[f"{t}.{k}"] for k in keys})
            used = forest.a["feature_idx"][forest.a["is_leaf"] == 0]
            if used.size and (used.min() < 0 or used.max() >= len(expected)):
                raise SpecError(f"gbdt: task {t!r} splits on a feature index outside 0..{len(expected) - 1}")
            forests[t] = forest
        model.forests = forests
        return model
