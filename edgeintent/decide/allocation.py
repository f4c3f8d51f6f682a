"""Coupon allocation as a multiple-choice knapsack (MCKP), solved by a primal-dual (Lagrangian) method.

Users ``i`` and options ``j`` (``amounts[0] == 0`` is "no coupon"); ``gain[i, j]`` from the model's
purchase probabilities ``P[i, j]`` (see :func:`gains`); the cost of option ``j`` is its face value
``c_j = amounts[j]``. Choose one option per user::

    max  Σ_ij gain_ij x_ij   s.t.  Σ_ij c_j x_ij ≤ B,   Σ_j x_ij = 1,   x_ij ∈ {0, 1}

and only users whose stay probability is below ``gamma`` may get a coupon (a user who will keep
browsing anyway is left alone this time).

**Primal-dual.** With a multiplier λ ≥ 0 on the budget, every user independently takes
``argmax_j (gain_ij − λ c_j)`` (ties go to the cheaper option). The options a user can take for some
λ are the vertices of the upper concave hull of its points ``(c_j, gain_ij)``; walking the hull from
"no coupon", each step ("segment") costs ``Δc`` more, gains ``Δg`` more and is taken exactly when its
ratio ``Δg/Δc > λ``. Ratios fall along a user's hull, so the spend ``Σ Δc·[ratio > λ]`` falls with λ.

1. Per user, the hull segments with a positive ratio (a user with none has no profitable coupon and
   never gets one), vectorised across users (a gift-wrapping step per option, K is small).
2. Bisection on λ: keep ``lo`` (spend too high) and ``hi`` (spend ≤ B) and split the segments
   whose ratio lies between them at a pivot (the median of a small sample of their ratios, so each
   step halves them however skewed the ratios are), until few are left (or no pivot separates
   them: many users tie).
3. The boundary, exactly: the segments inside (lo, hi] are sorted by ratio (stable, so ties keep the
   user order and each user's own order) and taken while they fit. The first that does not fit is
   the *break* segment: its ratio is λ*, and "everything taken + that fraction of the break segment"
   is the optimum of the LP relaxation (the classic greedy for the LP of an MCKP). ``lp_bound``.
4. Greedy fill: the leftover budget goes, by falling ratio, to the next segment of any user that
   still fits. The spend never exceeds B.

The integral solution misses the LP optimum by less than one segment's gain. ``lp_relaxation``
re-solves the same LP with scipy's HiGHS (sparse, interior point), as an independent check of ``lp_bound``.

Objectives (``gains``):

- ``purchases``: expected purchases of coupon holders, ``P_ij`` for a coupon and 0 without one (the
  IIDN paper's objective: it does not subtract what the user would have bought anyway);
- ``incremental``: expected extra purchases, ``P_ij − P_i0``;
- ``value``: expected extra order value net of the redeemed coupon, ``v·(P_ij − P_i0) − c_j·P_ij``
  (``v`` = ``order_value``, a number or one per user); a coupon that does not pay for itself is never
  given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeintent.errors import ConfigError

OBJECTIVES = ("purchases", "incremental", "value")
#: Bisection stops when at most this many segments have a ratio inside (lo, hi]; they are sorted.
_BOUNDARY_SEGMENTS = 4096
_MAX_BISECTIONS = 64


def check_amounts(amounts) -> np.ndarray:
    """Amounts as float64, checked: ``0`` first (no coupon), then strictly increasing, finite."""
    a = np.asarray(amounts, dtype=np.float64).ravel()
    if a.size < 2:
        raise ConfigError(f"amounts need 0 (no coupon) and at least one coupon, got {a.tolist()}")
    if not np.all(np.isfinite(a)) or a[0] != 0.0 or np.any(np.diff(a) <= 0):
        raise ConfigError(f"amounts must start with 0 (no coupon) and increase strictly, got {a.tolist()}")
    return a


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


def gains(p: np.ndarray, amounts, objective: str = "incremental", order_value: float | np.ndarray = 1.0) -> np.ndarray:
    """(n, K) gain of each option from purchase probabilities ``p`` (n, K) under ``objective``."""
    check_objective(objective)
    a = check_amounts(amounts)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != a.size:
        raise ConfigError(f"purchase probabilities must be (users, {a.size} amounts), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ConfigError("purchase probabilities contain NaN or inf")
    if objective == "purchases":
        g = p.copy()
        g[:, 0] = 0.0
        return g
    if objective == "incremental":
        return p - p[:, :1]
    v = np.asarray(order_value, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ConfigError("order_value must be finite and non-negative")
    return v * (p - p[:, :1]) - a[None, :] * p


@dataclass(frozen=True)
class Allocation:
    """The solver's answer; ``choice[i]`` indexes ``amounts``."""

    choice: np.ndarray  # (n,) int64
    amounts: tuple[float, ...]
    objective: str
    budget: float
    gamma: float
    lam: float  # λ*: the dual price of the budget (0 when the budget does not bind)
    spend: float
    value: float  # Σ gain of the chosen options (gain of "no coupon" included)
    lp_bound: float  # optimum of the LP relaxation, ≥ value
    eligible: np.ndarray  # (n,) bool: stay < gamma
    filled: int  # segments added by the greedy fill after the break

    @property
    def offered(self) -> np.ndarray:
        return np.asarray(self.amounts)[self.choice]

    def summary(self) -> dict:
        c = self.choice
        counts = {f"{a:g}": int((c == j).sum()) for j, a in enumerate(self.amounts)}
        return {
            "objective": self.objective, "budget": self.budget, "spend": self.spend, "lambda": self.lam,
            "gamma": self.gamma, "users": int(c.size), "eligible": int(self.eligible.sum()),
            "value": self.value, "lp_bound": self.lp_bound,
            "lp_gap": (self.lp_bound - self.value) / abs(self.lp_bound) if self.lp_bound else 0.0,
            "counts": counts, "filled": self.filled,
        }  # fmt: skip


def eligibility(n: int, stay: np.ndarray | None, gamma: float) -> np.ndarray:
    """Users who may get a coupon: stay probability strictly below ``gamma``; ``gamma = 1`` keeps everyone."""
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"gamma must be in [0, 1], got {gamma}")
    if stay is None:
        if gamma < 1.0:
            raise ConfigError("gamma < 1 needs stay probabilities (a model with a stay task, such as iidn)")
        return np.ones(n, dtype=bool)
    stay = np.asarray(stay, dtype=np.float64).ravel()
    if stay.size != n:
        raise ConfigError(f"stay probabilities: {stay.size} values for {n} users")
    if gamma >= 1.0:
        return np.ones(n, dtype=bool)
    return stay < gamma


def hull_segments(g: np.ndarray, costs: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Upper-hull steps from "no coupon", vectorised over users (one column of ``g`` at a time).

    Returns ``(ratio, dcost, dgain, target)``, each (K-1, n), step-major: step ``k`` of user ``i``
    moves to option ``target[k, i]``; steps that do not exist (no profitable move, or an ineligible
    user) have ratio NaN. Along a user's steps the ratio does not increase; among equal slopes the
    cheaper target is taken first (collinear options stay separate steps).
    """
    n, K = g.shape
    gt = np.ascontiguousarray(g.T)  # (K, n): contiguous columns
    ratio = np.full((K - 1, n), np.nan)
    dcost = np.zeros((K - 1, n))
    dgain = np.zeros((K - 1, n))
    target = np.zeros((K - 1, n), dtype=np.int64)
    idx = None if eligible.all() else np.flatnonzero(eligible)  # None: every user (no gathers)
    m = n if idx is None else idx.size
    g_cur = gt[0].copy() if idx is None else gt[0, idx]
    c_cur = np.zeros(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(K - 1):
            if m == 0:
                break
            best_r = np.full(m, -np.inf)
            best_j = np.zeros(m, dtype=np.int64)
            best_g = g_cur.copy()
            for j in range(k + 1, K):  # after k steps a user sits at option ≥ k
                gj = gt[j] if idx is None else gt[j, idx]
                r = (gj - g_cur) / (costs[j] - c_cur)
                if k:
                    r[costs[j] <= c_cur] = -np.inf
                better = r > best_r  # strict: the first (cheapest) of equal slopes wins
                np.copyto(best_r, r, where=better)
                np.copyto(best_j, j, where=better)
                np.copyto(best_g, gj, where=better)
            ok = best_r > 0
            if not ok.all():
                idx = np.flatnonzero(ok) if idx is None else idx[ok]
                best_r, best_j, best_g, g_cur, c_cur = best_r[ok], best_j[ok], best_g[ok], g_cur[ok], c_cur[ok]
            sel = slice(None) if idx is None else idx
            c_new = costs[best_j]
            ratio[k, sel] = best_r
            dcost[k, sel] = c_new - c_cur
            dgain[k, sel] = best_g - g_cur
            target[k, sel] = best_j
            g_cur, c_cur = best_g, c_new
            m = best_r.size
    return ratio, dcost, dgain, target


def solve(
    g: np.ndarray,
    costs,
    budget: float,
    eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float, int]:
    """Primal-dual MCKP on gains ``g`` (n, K) and option costs (K,), ``costs[0] == 0``.

    Returns ``(choice, lam, lp_bound, filled)``; see the module docstring for the method.
    """
    costs = check_amounts(costs)
    g = np.asarray(g, dtype=np.float64)
    n, K = g.shape
    if K != costs.size:
        raise ConfigError(f"gains have {K} options but there are {costs.size} amounts")
    if not np.isfinite(budget) or budget < 0:
        raise ConfigError(f"budget must be a non-negative number, got {budget}")
    eligible = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    base = float(g[:, 0].sum())
    ratio, dcost, dgain, target = hull_segments(g, costs, eligible)

    # segments, step-major: a user's step k comes before its step k+1 in this order
    flat_r = ratio.ravel()
    seg = np.flatnonzero(~np.isnan(flat_r))
    r, dc = flat_r[seg], dcost.ravel()[seg]
    total = float(dc.sum())
    taken = np.zeros(seg.size, dtype=bool)
    lam, frac_gain = 0.0, 0.0
    if total <= budget:
        taken[:] = True
    else:
        # -- bisection on λ: spend(λ) = Σ dc[r > λ] -------------------------------------------
        # Each step splits the candidates (lo < r ≤ hi) at a pivot: the median of a small sample of
        # their ratios (halving the candidates however skewed the ratios are), or the midpoint of
        # (lo, hi) when the sample cannot split; ties that no pivot separates end the bisection.
        lo, hi = 0.0, float(r.max())  # spend(lo) > B (every r is > 0), spend(hi) = 0 ≤ B
        r_in, dc_in = r, dc  # the candidates' ratios and costs (values only: cheaper to compress)
        spend_hi = 0.0  # spend of the segments with r > hi
        rng = np.random.default_rng(0)  # speed only: the answer does not depend on the pivots
        for _ in range(_MAX_BISECTIONS):
            if r_in.size <= _BOUNDARY_SEGMENTS:
                break
            mid = float(np.median(r_in[rng.integers(0, r_in.size, 1023)]))
            if not lo < mid < hi:
                mid = 0.5 * (lo + hi)
                if not lo < mid < hi:
                    break
            above = r_in > mid
            s_mid = spend_hi + float(np.sum(dc_in, where=above))
            if s_mid <= budget:
                hi, spend_hi = mid, s_mid
                np.logical_not(above, out=above)
            else:
                lo = mid
            r_in, dc_in = r_in[above], dc_in[above]
        above_hi = r > hi
        taken[above_hi] = True
        inside = np.flatnonzero((r > lo) & ~above_hi)
        # -- the boundary: sort the candidates, take while they fit, the first misfit is the break --
        order = inside[np.argsort(-r[inside], kind="stable")]
        cum = spend_hi + np.cumsum(dc[order])
        n_fit = int(np.searchsorted(cum, budget, side="right"))
        taken[order[:n_fit]] = True
        brk = order[n_fit]  # exists: spend(lo) > B
        lam = float(r[brk])
        room = budget - (cum[n_fit - 1] if n_fit else spend_hi)
        frac_gain = float(dgain.ravel()[seg[brk]]) * room / float(dc[brk])
    lp_bound = base + float(dgain.ravel()[seg[taken]].sum()) + frac_gain

    # -- choice from the taken segments (each user's taken steps form a prefix of its hull) ---------
    steps = np.zeros((K - 1) * n, dtype=bool)
    steps[seg[taken]] = True
    n_steps = steps.reshape(K - 1, n).sum(axis=0)
    choice = np.zeros(n, dtype=np.int64)
    has = np.flatnonzero(n_steps)
    choice[has] = target[n_steps[has] - 1, has]
    spend = float(costs[choice].sum())

    # -- greedy fill of the leftover budget by falling ratio ---------------------------------------
    filled = 0
    if total > budget:
        left = budget - spend
        cand = np.flatnonzero(n_steps < K - 1)
        k = n_steps[cand]
        cr, cdc = ratio[k, cand], dcost[k, cand]
        keep = ~np.isnan(cr) & (cdc <= left)
        cand, k, cr, cdc = cand[keep], k[keep], cr[keep], cdc[keep]
        while cand.size:
            b = int(np.argmax(cr))  # the first maximum: the earliest user among ties
            i = int(cand[b])
            choice[i] = target[k[b], i]
            left -= cdc[b]
            filled += 1
            k[b] += 1
            if k[b] < K - 1 and not np.isnan(ratio[k[b], i]):
                cr[b], cdc[b] = ratio[k[b], i], dcost[k[b], i]
            else:
                cdc[b] = np.inf
            keep = cdc <= left
            cand, k, cr, cdc = cand[keep], k[keep], cr[keep], cdc[keep]
        spend = float(costs[choice].sum())
    if spend > budget:  # pragma: no cover - an invariant, checked loudly
        raise AssertionError(f"allocation spends {spend} > budget {budget}")
    return choice, lam, lp_bound, filled


def allocate(
    p: np.ndarray,
    budget: float,
    amounts=(0.0, 5.0, 10.0, 20.0),
    objective: str = "incremental",
    stay: np.ndarray | None = None,
    gamma: float = 1.0,
    order_value: float | np.ndarray = 1.0,
) -> Allocation:
    """Allocate coupons from purchase probabilities ``p`` (n, K) and stay probabilities (n,)."""
    a = check_amounts(amounts)
    g = gains(p, a, objective, order_value)
    elig = eligibility(g.shape[0], stay, gamma)
    choice, lam, lp_bound, filled = solve(g, a, budget, elig)
    value = float(g[np.arange(g.shape[0]), choice].sum())
    return Allocation(
        choice=choice, amounts=tuple(float(x) for x in a), objective=objective, budget=float(budget),
        gamma=float(gamma), lam=lam, spend=float(a[choice].sum()), value=value, lp_bound=lp_bound,
        eligible=elig, filled=filled,
    )  # fmt: skip


def lp_relaxation(g: np.ndarray, costs, budget: float, eligible: np.ndarray | None = None) -> float:
    """The LP relaxation's optimum by scipy's HiGHS on sparse matrices (an independent check)."""
    from scipy import sparse
    from scipy.optimize import linprog

    costs = check_amounts(costs)
    g = np.asarray(g, dtype=np.float64)
    n, K = g.shape
    eligible = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    base = float(g[~eligible, 0].sum())
    ge = g[eligible]
    m = ge.shape[0]
    if m == 0:
        return base
    # x_ij for eligible users and coupons j ≥ 1 (user-major); "no coupon" is the slack x_i0 = 1 − Σ_j x_ij:
    #   max Σ (g_ij − g_i0) x_ij   s.t.   Σ c_j x_ij ≤ B,   Σ_j x_ij ≤ 1 per user,   0 ≤ x ≤ 1
    # The interior-point method: on 100k users × 4 coupons it takes seconds, dual simplex a minute.
    d = (ge[:, 1:] - ge[:, :1]).ravel()
    a_ub = sparse.vstack(
        [sparse.csr_matrix(np.tile(costs[1:], m)[None, :]), sparse.kron(sparse.identity(m, format="csr"), np.ones((1, K - 1)))],
        format="csr",
    )
    b_ub = np.concatenate([[float(budget)], np.ones(m)])
    res = linprog(-d, A_ub=a_ub, b_ub=b_ub, bounds=(0.0, 1.0), method="highs-ipm")
    if res.status != 0:
        raise RuntimeError(f"HiGHS did not solve the LP relaxation: {res.message}")
    return base + float(ge[:, 0].sum()) - float(res.fun)
