"""The scenario scorers' fitting, as pure functions (arrays in, tables out).

- :func:`mine_interest` — user tags × candidate category frequent itemsets with **mlxtend's FP-growth**;
  one transaction per (request, category the user touched that day) holding the request's tags and
  the category; conversions (cart, fav, buy) count as ``conv_weight`` clicks (the transaction is
  repeated); itemsets keep ≤ 2 tags. A (tag set → category) pair is scored by **lift**
  ``supp(T ∪ c) / (supp(T) · supp(c))`` = confidence over the category's popularity, mapped to [0, 1)
  as ``max(0, 1 − 1/lift)``: a category everybody touches has lift ≈ 1 and scores ≈ 0 unless a tag
  set makes it much more likely.
- :func:`gentle_adaboost` — **Gentle AdaBoost** (Friedman, Hastie & Tibshirani 2000) of regression
  stumps, written here by hand: scikit-learn's ``AdaBoostClassifier`` has only discrete (SAMME)
  boosting. Each round fits the stump minimising the weighted squared error of ``y ∈ {−1, +1}`` and
  adds its two leaf means; weights are ``w · e^{−y f(x)}``. Classes start with equal total weight
  (conversions are rare), and the training error reported is the balanced error of ``sign(F)``.
- :class:`ContextScorer` — request-time context scoring with a **round budget** per request and a
  score cache per (industry, context hour): an industry the budget does not reach is left out of this
  request (neutral 0.5) and scored by a later one.
- :func:`keyword_table` — term → category association by TF-IDF (scikit-learn's ``TfidfTransformer``):
  one document per term (a profile category), holding the categories engaged after it.
- :func:`fit_fusion` — per industry, a logistic regression (scikit-learn) over the scenario scores;
  industries with too few rows (cold start) get the pooled fit, or fixed equal weights without one;
  :func:`fit_tiered_fusion` fits it apart on the candidates in the user's profile and outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------
# Interest: FP-growth over (tags, category) transactions
# ---------------------------------------------------------------------------------------------


def mine_interest(transactions: list[tuple[tuple[str, ...], str, int]], min_count: int = 5,
                  max_tags: int = 2) -> dict[tuple[tuple[str, ...], str], float]:  # fmt: skip
    """``{(sorted tag tuple, category): score in [0, 1)}`` for every frequent (≤ ``max_tags`` tags, category) itemset.

    ``transactions`` are ``(tags, category, copies)``: the category item and the tag items of one
    transaction, repeated ``copies`` times (a conversion counts as several clicks). Tag items and
    category items are kept apart by the prefixes ``t=`` and ``c=``.
    """
    import pandas as pd
    from mlxtend.frequent_patterns import fpgrowth

    if not transactions:
        return {}
    items: dict[str, int] = {}
    rows, cols, reps = [], [], []
    for i, (tags, cat, copies) in enumerate(transactions):
        for it in [f"t={t}" for t in tags] + [f"c={cat}"]:
            rows.append(i)
            cols.append(items.setdefault(it, len(items)))
        reps.append(copies)
    names = sorted(items, key=items.get)
    dense = np.zeros((len(transactions), len(names)), bool)
    dense[rows, cols] = True
    dense = np.repeat(dense, np.asarray(reps, np.int64), axis=0)
    n = dense.shape[0]
    df = pd.DataFrame(dense, columns=names)
    freq = fpgrowth(df, min_support=min_count / n, use_colnames=True, max_len=max_tags + 1)
    support = {frozenset(s): float(v) for s, v in zip(freq["itemsets"], freq["support"], strict=True)}
    out: dict[tuple[tuple[str, ...], str], float] = {}
    for s, sup in support.items():
        cats = [x for x in s if x.startswith("c=")]
        tags = tuple(sorted(x[2:] for x in s if x.startswith("t=")))
        if len(cats) != 1 or not tags:
            continue
        s_t = support.get(frozenset(f"t={t}" for t in tags))
        s_c = support.get(frozenset(cats))
        if not s_t or not s_c:
            continue
        lift = sup / (s_t * s_c)
        if lift > 1.0:
            out[(tags, cats[0][2:])] = 1.0 - 1.0 / lift
    return out


# ---------------------------------------------------------------------------------------------
# Context: Gentle AdaBoost of regression stumps (hand-written)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stumps:
    """``F(x) = Σ_r (x[feat_r] ≤ thr_r ? left_r : right_r)``."""

    feat: np.ndarray  # (R,) int64
    thr: np.ndarray  # (R,) float64
    left: np.ndarray  # (R,) float64
    right: np.ndarray  # (R,) float64
    train_error: float = 0.5  # balanced error of sign(F) on the training rows

    def __len__(self) -> int:
        return len(self.feat)

    def decision(self, x: np.ndarray, rounds: int | None = None) -> np.ndarray:
        r = len(self.feat) if rounds is None else min(rounds, len(self.feat))
        x = np.atleast_2d(x)
        out = np.zeros(len(x), np.float64)
        for i in range(r):
            out += np.where(x[:, self.feat[i]] <= self.thr[i], self.left[i], self.right[i])
        return out


def _best_stump(x: np.ndarray, y: np.ndarray, w: np.ndarray, orders: list[np.ndarray]) -> tuple[int, float, float, float, float]:
    """The stump minimising Σ w (y − f(x))²; leaves are weighted means of y (the Gentle AdaBoost step)."""
    best = (np.inf, 0, 0.0, 0.0, 0.0)
    wy, ww = w * y, w
    tot_wy, tot_w = wy.sum(), ww.sum()
    for j, order in enumerate(orders):
        xs = x[order, j]
        cwy, cw = np.cumsum(wy[order]), np.cumsum(ww[order])
        cut = np.flatnonzero(xs[1:] != xs[:-1])  # split after position cut (between distinct values)
        if len(cut) == 0:
            continue
        lw, lwy = cw[cut], cwy[cut]
        rw, rwy = tot_w - lw, tot_wy - lwy
        ok = (lw > 0) & (rw > 0)
        if not ok.any():
            continue
        # weighted SSE = Σw y² − lwy²/lw − rwy²/rw (Σw y² is constant: y² = 1)
        gain = np.where(ok, lwy**2 / np.where(ok, lw, 1) + rwy**2 / np.where(ok, rw, 1), -np.inf)
        k = int(np.argmax(gain))
        sse = tot_w - gain[k]
        if sse < best[0] - 1e-15:
            thr = (xs[cut[k]] + xs[cut[k] + 1]) / 2.0
            best = (sse, j, float(thr), float(lwy[k] / lw[k]), float(rwy[k] / rw[k]))
    return best[1], best[2], best[3], best[4], best[0]


def gentle_adaboost(x: np.ndarray, y: np.ndarray, rounds: int = 100, balanced: bool = True) -> Stumps:
    """Gentle AdaBoost with regression stumps on ``x`` (n, F) and ``y`` in {0, 1} (or {−1, +1}); ≤ ``rounds`` stumps.

    Stops early when no split reduces the weighted error (a constant feature set).
    """
    x = np.asarray(x, np.float64)
    y = np.where(np.asarray(y) > 0, 1.0, -1.0)
    n = len(y)
    if n == 0:
        return Stumps(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0), 0.5)
    w = np.ones(n, np.float64)
    if balanced and 0 < (y > 0).sum() < n:
        w[y > 0] = 0.5 / (y > 0).sum()
        w[y < 0] = 0.5 / (y < 0).sum()
    w /= w.sum()
    orders = [np.argsort(x[:, j], kind="stable") for j in range(x.shape[1])]
    feat, thr, left, right = [], [], [], []
    F = np.zeros(n)
    for _ in range(rounds):
        j, t, lv, rv, sse = _best_stump(x, y, w, orders)
        if not np.isfinite(sse):
            break
        f = np.where(x[:, j] <= t, lv, rv)
        F += f
        feat.append(j), thr.append(t), left.append(lv), right.append(rv)
        w = w * np.exp(-y * f)
        w /= w.sum()
    pos, neg = y > 0, y < 0
    pred = F > 0
    err_pos = float((~pred[pos]).mean()) if pos.any() else 0.0
    err_neg = float(pred[neg].mean()) if neg.any() else 0.0
    return Stumps(np.asarray(feat, np.int64), np.asarray(thr, np.float64), np.asarray(left, np.float64),
                  np.asarray(right, np.float64), (err_pos + err_neg) / 2)  # fmt: skip


def context_probability(f: np.ndarray) -> np.ndarray:
    """Gentle AdaBoost's F estimates half the log-odds: p = 1 / (1 + e^{−2F}) ∈ (0, 1)."""
    return 1.0 / (1.0 + np.exp(-2.0 * np.asarray(f, np.float64)))


@dataclass
class ContextScorer:
    """Request-time context scores with a round budget and a (industry, context hour) cache.

    ``score(industries, context, hour_key, budget)`` returns a score per asked industry: from the
    cache when this (industry, hour) was scored before; else, while the request's budget of stump
    rounds lasts, by evaluating the industry's stumps (and caching the result); else ``None`` (not
    scored in this request: the caller uses the neutral 0.5, and a later request fills the cache).
    Dropped industries (no stumps) cost nothing and score 0.5.
    """

    stumps: dict[int, Stumps]
    cache: dict[tuple[int, int], float] = field(default_factory=dict)
    rounds_used: int = 0

    def score(self, industries: list[int], context: np.ndarray, hour_key: int, budget: int) -> dict[int, float | None]:
        out: dict[int, float | None] = {}
        left = budget
        for g in industries:
            if (g, hour_key) in self.cache:
                out[g] = self.cache[(g, hour_key)]
                continue
            st = self.stumps.get(g)
            if st is None or len(st) == 0:
                out[g] = 0.5
                continue
            if len(st) > left:
                out[g] = None
                continue
            left -= len(st)
            self.rounds_used += len(st)
            v = float(context_probability(st.decision(context))[0])
            self.cache[(g, hour_key)] = v
            out[g] = v
        return out


# ---------------------------------------------------------------------------------------------
# Keyword: TF-IDF term → category
# ---------------------------------------------------------------------------------------------


def keyword_table(doc_terms: np.ndarray, vocab: int) -> np.ndarray:
    """``A[term, category]`` (vocab × vocab float32) from ``doc_terms`` (n, 3) = (term, category, count).

    TF-IDF with scikit-learn's ``TfidfTransformer`` (sublinear tf, smooth idf, l2-normalised rows):
    one document per term (a profile category), whose words are the categories engaged after it; the
    idf discounts categories that follow every term (popular with everyone). Row and column 0 (out of
    vocabulary) stay zero.
    """
    from scipy.sparse import coo_matrix
    from sklearn.feature_extraction.text import TfidfTransformer

    a = np.zeros((vocab, vocab), np.float32)
    if len(doc_terms) == 0:
        return a
    counts = coo_matrix((doc_terms[:, 2].astype(np.float64), (doc_terms[:, 0], doc_terms[:, 1])), shape=(vocab, vocab)).tocsr()
    a[:, :] = TfidfTransformer(norm="l2", smooth_idf=True, sublinear_tf=True).fit_transform(counts).toarray()
    a[0, :] = 0
    a[:, 0] = 0
    return a


# ---------------------------------------------------------------------------------------------
# Fusion: per-industry logistic regression
# ---------------------------------------------------------------------------------------------

#: the cold-start fusion when nothing can be fitted: every input (interest, context, keyword, log weight,
#: prior) counts the same
DEFAULT_COEF = (1.0, 1.0, 1.0, 1.0, 1.0)
DEFAULT_INTERCEPT = -2.0


def fit_fusion(x: np.ndarray, y: np.ndarray, industry: np.ndarray, n_industries: int,
               min_rows: int = 200, min_pos: int = 10) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """``(W (G, S), b (G,), how per industry)``: a logistic regression per industry over the scores ``x`` (n, S).

    An industry with fewer than ``min_rows`` rows or ``min_pos`` positives (or negatives) takes the
    pooled fit over every industry ("pooled"); without a pooled fit, :data:`DEFAULT_COEF` ("default").
    """
    from sklearn.linear_model import LogisticRegression

    def fit(xs, ys):
        if len(ys) < min_rows or min(int(ys.sum()), int(len(ys) - ys.sum())) < min_pos:
            return None
        lr = LogisticRegression(C=1.0, max_iter=1000)
        lr.fit(xs, ys)
        return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])

    s = x.shape[1]
    pooled = fit(x, y)
    default = pooled if pooled is not None else (np.asarray(DEFAULT_COEF[:s], np.float64), DEFAULT_INTERCEPT)
    W = np.zeros((n_industries, s), np.float64)
    b = np.zeros(n_industries, np.float64)
    how = []
    for g in range(n_industries):
        sel = industry == g
        got = fit(x[sel], y[sel])
        if got is None:
            got = default
            how.append("pooled" if pooled is not None else "default")
        else:
            how.append("fitted")
        W[g], b[g] = got
    return W, b, how


def fit_tiered_fusion(x: np.ndarray, y: np.ndarray, industry: np.ndarray, tier: np.ndarray, n_industries: int,
                      **kw) -> tuple[np.ndarray, np.ndarray, dict[str, list[str]]]:  # fmt: skip
    """``(W (2, G, S), b (2, G), how)``: :func:`fit_fusion` on the rows outside the profile (tier 0) and on
    the rows in it (tier 1) apart — the fusion fully interacted with "the candidate is in the profile"."""
    s = x.shape[1]
    W = np.zeros((2, n_industries, s), np.float64)
    b = np.zeros((2, n_industries), np.float64)
    how = {}
    for t, name in ((0, "outside"), (1, "in_profile")):
        sel = tier == t
        W[t], b[t], how[name] = fit_fusion(x[sel], y[sel], industry[sel], n_industries, **kw)
    return W, b, how
