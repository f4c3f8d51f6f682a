"""Policy evaluation on the simulator's potential outcomes.

The simulator logs, at every decision point, the true purchase probability ``p_buy[j]`` and the
potential outcome ``buy[j]`` under **every** amount (common random numbers), so any coupon policy can
be scored exactly, without off-policy estimators: a policy picks one amount per decision point and
reads off what would have happened.

Policies, each at a budget B (total face value of the coupons handed out, ``spend ≤ B``):

- ``give-all``: everyone gets the largest amount with ``n·a ≤ B``; when even the smallest coupon for
  everyone exceeds B, the smallest coupon goes to random decision points until B is used up;
- ``random``: random decision points, each with a uniformly random coupon, until B is used up;
- ``middle-band`` (DIPN's online test): only the middle half of the decision points by the model's
  real-time purchase probability without a coupon (the half nearest the median: 25th–75th
  percentile), each getting the largest amount with ``band·a ≤ B`` (or, when none fits, the
  smallest amount, nearest the median first);
- ``mckp``: the primal-dual MCKP (``allocation``) on the model's predicted ``P_ij`` (and stay S with γ);
- ``oracle``: the same solver on the true probabilities ``p_buy``; an upper reference for ``mckp``.

Metrics: spend (face value handed out), coupons, incremental purchases ``Σ p[i, x_i] − p[i, 0]``
(expected, from the true probabilities; the realised count from ``buy`` is reported too),
incremental purchases per unit of spend, redemption rate (the share of coupons that are used:
expected purchases of coupon holders over coupons) and the redeemed face value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from edgeintent.decide.allocation import allocate, check_amounts, check_objective
from edgeintent.errors import ConfigError, DataError
from edgeintent.registry import Registry

POLICIES: Registry[Callable] = Registry("policy")
BAND = (0.25, 0.75)


def register_policy(name: str):
    return POLICIES.register(name)


@dataclass
class Outcomes:
    """True purchase probabilities and potential outcomes under every amount, per decision point."""

    p: np.ndarray  # (n, K) float64
    buy: np.ndarray  # (n, K) bool
    amounts: np.ndarray  # (K,)


@dataclass
class PolicyInputs:
    """What a policy may look at: model predictions (and, for the oracle only, the truth)."""

    p_model: np.ndarray  # (n, K) predicted purchase probability under each amount
    stay_model: np.ndarray | None  # (n,) predicted stay probability (no coupon), None without a stay task
    truth: Outcomes
    gamma: float = 1.0
    objective: str = "incremental"
    order_value: float = 1.0
    seed: int = 0


def outcomes_from_decisions(table: pa.Table | None, source: str = "data") -> Outcomes:
    """Potential outcomes from a decisions table (the simulator's ``p_buy``/``buy`` lists, ``amounts`` metadata)."""
    if table is None or "p_buy" not in table.column_names or "buy" not in table.column_names:
        raise DataError(f"{source}: no potential outcomes (p_buy, buy) at the decision points; "
                        "policy evaluation needs the simulator (sim:USERS[:SEED]) or its saved events")  # fmt: skip
    meta = table.schema.metadata or {}
    if b"amounts" not in meta:
        raise DataError(f"{source}: the decision points carry no 'amounts' metadata for p_buy/buy")
    amounts = check_amounts(json.loads(meta[b"amounts"].decode()))
    k = amounts.size
    p = _list_column(table, "p_buy", k, np.float64)
    buy = _list_column(table, "buy", k, bool)
    return Outcomes(p=p, buy=buy, amounts=amounts)


def _list_column(table: pa.Table, name: str, k: int, dtype) -> np.ndarray:
    col = table.column(name).combine_chunks()
    values = col.flatten().to_numpy(zero_copy_only=False).astype(dtype)
    if values.size != table.num_rows * k:
        raise DataError(f"column {name!r} should hold {k} values per decision point")
    return values.reshape(table.num_rows, k)


# ---------------------------------------------------------------------------------------------
# Policies: (inputs, budget, rng) -> choice (n,) indices into amounts
# ---------------------------------------------------------------------------------------------


def _fill_in_order(order: np.ndarray, cost: np.ndarray, budget: float, n: int, pick: np.ndarray) -> np.ndarray:
    """Give ``pick[i]`` to users in ``order`` while it fits (first fit: a coupon that does not fit is skipped)."""
    choice = np.zeros(n, dtype=np.int64)
    c = cost[pick[order]]
    cum = np.cumsum(c)
    n_fit = int(np.searchsorted(cum, budget, side="right"))
    choice[order[:n_fit]] = pick[order[:n_fit]]
    left = budget - (cum[n_fit - 1] if n_fit else 0.0)
    rest = order[n_fit:]
    cheapest = c.min(initial=np.inf)
    for i in rest:  # at most a few more fit: the leftover is smaller than one coupon
        if left < cheapest:
            break
        if cost[pick[i]] <= left:
            choice[i] = pick[i]
            left -= cost[pick[i]]
    return choice


def _largest_affordable(amounts: np.ndarray, users: int, budget: float) -> int:
    """Index of the largest amount a with users·a ≤ budget (0 when not even the smallest coupon fits)."""
    fits = np.flatnonzero(amounts[1:] * users <= budget + 1e-9)
    return int(fits[-1] + 1) if fits.size else 0


@register_policy("give-all")
def give_all(inp: PolicyInputs, budget: float, rng: np.random.Generator) -> np.ndarray:
    a = inp.truth.amounts
    n = inp.p_model.shape[0]
    j = _largest_affordable(a, n, budget)
    if j:
        return np.full(n, j, dtype=np.int64)
    return _fill_in_order(rng.permutation(n), a, budget, n, np.ones(n, dtype=np.int64))


@register_policy("random")
def random_policy(inp: PolicyInputs, budget: float, rng: np.random.Generator) -> np.ndarray:
    a = inp.truth.amounts
    n = inp.p_model.shape[0]
    pick = rng.integers(1, a.size, n)
    return _fill_in_order(rng.permutation(n), a, budget, n, pick)


@register_policy("middle-band")
def middle_band(inp: PolicyInputs, budget: float, rng: np.random.Generator) -> np.ndarray:
    a = inp.truth.amounts
    n = inp.p_model.shape[0]
    p0 = inp.p_model[:, 0]
    rank = np.empty(n)
    rank[np.argsort(p0, kind="stable")] = np.arange(n)
    # the middle half by count: the floor((hi - lo)·n) decision points nearest the median rank
    near = np.argsort(np.abs(rank - (n - 1) * (BAND[0] + BAND[1]) / 2), kind="stable")
    band = near[: int((BAND[1] - BAND[0]) * n)]
    j = _largest_affordable(a, band.size, budget)
    choice = np.zeros(n, dtype=np.int64)
    if j:
        choice[band] = j
        return choice
    return _fill_in_order(band, a, budget, n, np.ones(n, dtype=np.int64))


@register_policy("mckp")
def mckp_model(inp: PolicyInputs, budget: float, rng: np.random.Generator) -> np.ndarray:
    return allocate(inp.p_model, budget, inp.truth.amounts, inp.objective, inp.stay_model, inp.gamma,
                    inp.order_value).choice  # fmt: skip


@register_policy("oracle")
def oracle(inp: PolicyInputs, budget: float, rng: np.random.Generator) -> np.ndarray:
    return allocate(inp.truth.p, budget, inp.truth.amounts, inp.objective, None, 1.0, inp.order_value).choice


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def score(choice: np.ndarray, truth: Outcomes) -> dict:
    """Metrics of one allocation on the potential outcomes."""
    n = choice.size
    rows = np.arange(n)
    a = truth.amounts
    p_x, p_0 = truth.p[rows, choice], truth.p[:, 0]
    b_x, b_0 = truth.buy[rows, choice], truth.buy[:, 0]
    got = choice > 0
    coupons = int(got.sum())
    spend = float(a[choice].sum())
    inc = float((p_x - p_0).sum())
    return {
        "decision_points": n,
        "coupons": coupons,
        "spend": spend,
        "incremental": inc,
        "incremental_realised": int(b_x.sum()) - int(b_0.sum()),
        "incremental_per_cost": inc / spend if spend > 0 else 0.0,
        "purchases": float(p_x.sum()),
        "redemption_rate": float(p_x[got].sum() / coupons) if coupons else 0.0,
        "redemption_rate_realised": float(b_x[got].mean()) if coupons else 0.0,
        "redeemed_cost": float((a[choice] * p_x).sum()),
    }


def evaluate_policies(inp: PolicyInputs, budgets, policies=None) -> list[dict]:
    """One row per (budget, policy): the policy's metrics; random draws are seeded per budget."""
    check_objective(inp.objective)
    names = list(policies or POLICIES.names())
    for p in names:
        POLICIES.get(p)
    rows = []
    for k, b in enumerate(budgets):
        b = float(b)
        if not np.isfinite(b) or b < 0:
            raise ConfigError(f"budgets must be non-negative numbers, got {b}")
        for name in names:
            rng = np.random.default_rng([inp.seed, k])
            choice = POLICIES.get(name)(inp, b, rng)
            rows.append({"budget": b, "policy": name, **score(choice, inp.truth)})
    return rows


def ratios(rows: list[dict], ref: str = "give-all", of: str = "mckp") -> list[dict]:
    """Per budget: incremental purchases per unit cost of ``of`` over ``ref`` (and over every other policy)."""
    out = []
    for b in sorted({r["budget"] for r in rows}):
        at = {r["policy"]: r for r in rows if r["budget"] == b}
        if of not in at:
            continue
        row = {"budget": b}
        for name, r in at.items():
            if name != of and r["incremental_per_cost"] > 0:
                row[f"vs_{name}"] = at[of]["incremental_per_cost"] / r["incremental_per_cost"]
        out.append(row)
    return out


def _compact_number(x: float, _pos=None) -> str:
    """Tick label: 1,500 → "1.5k", 100,000 → "100k", 2,500,000 → "2.5M"."""
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def plot_budget_uplift(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Budget–uplift curves (incremental purchases against spend, one line per policy) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from edgeintent.io import atomic_path

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["policy"] for r in rows):
        pts = sorted((r["budget"], r["spend"], r["incremental"], r["incremental_per_cost"]) for r in rows
                     if r["policy"] == name)  # fmt: skip
        b, s, inc, per = (np.array(v) for v in zip(*pts))
        style = "--" if name == "oracle" else "-"
        axes[0].plot(s, inc, style, marker="o", label=name)
        axes[1].plot(b, per * 1000.0, style, marker="o", label=name)
    axes[0].set_xlabel("spend (face value of coupons handed out)")
    axes[0].set_ylabel("incremental purchases (expected)")
    axes[1].set_xlabel("budget")
    axes[1].set_ylabel("incremental purchases per 1,000 spent")
    for ax in axes:
        ax.grid(alpha=0.3)
        # compact labels (100k) and at most 5 ticks: large budgets ("90000", "100000") never run together
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(_compact_number))
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
