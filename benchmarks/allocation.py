"""Coupon allocation: solver time at 1M users × 5 amounts on one core, and the gap to the LP relaxation.

    python benchmarks/allocation.py --json
    python benchmarks/allocation.py --users 1000000 --repeats 5 --lp-users 3000 --json

Three figures:

- ``timing``: ``allocate`` (gains + hull segments + bisection on λ + boundary + greedy fill) on
  ``--users`` users and 5 amounts (0, 5, 10, 20, 30), the process pinned to one CPU, median over
  ``--repeats`` runs at each budget. The purchase probabilities follow the simulator's coupon response
  (``simulate.py``: base propensity, intent state, coupon sensitivity) drawn directly, because
  simulating a million users' events takes minutes and the solver only sees probabilities.
- ``lp``: on the decision points of ``sim:--lp-users`` (about 3.3 per user; the true ``p_buy``), the
  solver's objective against the LP relaxation's optimum from scipy's HiGHS, per objective and budget.
- ``parity``: the share of users for whom the on-device rule (λ, γ from the solve) picks the solver's amount.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeintent.decide.allocation import allocate, gains, lp_relaxation  # noqa: E402
from edgeintent.decide.policy import outcomes_from_decisions  # noqa: E402
from edgeintent.decide.rule import decide_batch, rule_from_allocation  # noqa: E402
from edgeintent.toolkit.data import simulator as S  # noqa: E402

AMOUNTS = (0.0, 5.0, 10.0, 20.0, 30.0)


def pin_one_cpu() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return "not pinned (no sched_setaffinity)"


def simulator_probs(n: int, seed: int, amounts=AMOUNTS) -> np.ndarray:
    """(n, K) purchase probabilities from the simulator's coupon response, drawn without events."""
    rng = np.random.default_rng(seed)
    base = rng.normal(S.BASE_MU, S.BASE_SD, n)
    sens = rng.gamma(S.SENS_SHAPE, S.SENS_SCALE, n)
    state = rng.choice(4, size=n, p=[0.37, 0.28, 0.13, 0.22])  # the decision-state mix of sim:20000
    h = np.log1p(np.asarray(amounts) / S.COUPON_SCALE)
    logit = (base + S.W_STATE[state])[:, None] + (sens * S.M_STATE[state])[:, None] * h[None, :]
    return 1.0 / (1.0 + np.exp(-logit))


def timing(users: int, repeats: int, seed: int) -> dict:
    p = simulator_probs(users, seed)
    rows = []
    for per_user in (1.0, 5.0, 10.0):
        budget = per_user * users
        times, al = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            al = allocate(p, budget, AMOUNTS)
            times.append(time.perf_counter() - t0)
        rule = rule_from_allocation(al)
        rows.append({
            "budget": budget, "budget_per_user": per_user, "seconds_median": statistics.median(times),
            "seconds_max": max(times), "spend": al.spend, "spend_le_budget": al.spend <= budget, "lambda": al.lam,
            "filled": al.filled, "lp_gap_vs_own_bound": (al.lp_bound - al.value) / al.lp_bound,
            "device_parity": float((decide_batch(rule, p) == al.choice).mean()),
        })  # fmt: skip
    return {"users": users, "amounts": list(AMOUNTS), "repeats": repeats, "runs": rows,
            "seconds_worst_median": max(r["seconds_median"] for r in rows)}  # fmt: skip


def lp_check(sim_users: int, seed: int) -> dict:
    sim = S.simulate(S.SimConfig(users=sim_users, seed=seed))
    truth = outcomes_from_decisions(sim.decisions)
    p, a = truth.p, truth.amounts
    n = p.shape[0]
    rows = []
    for objective in ("incremental", "purchases", "value"):
        for per_point in (1.0, 5.0, 10.0):
            budget = per_point * n
            al = allocate(p, budget, a, objective, order_value=60.0)
            t0 = time.perf_counter()
            lp = lp_relaxation(gains(p, a, objective, 60.0), a, budget)
            lp_s = time.perf_counter() - t0
            rows.append({
                "objective": objective, "budget": budget, "budget_per_point": per_point, "mckp": al.value,
                "lp_highs": lp, "gap": (lp - al.value) / abs(lp), "own_bound_vs_highs": al.lp_bound - lp,
                "spend": al.spend, "spend_le_budget": al.spend <= budget, "highs_seconds": lp_s,
                "device_parity": float((decide_batch(rule_from_allocation(al, 60.0), p) == al.choice).mean()),
            })  # fmt: skip
    return {"data": f"sim:{sim_users}:{seed}", "decision_points": n, "amounts": list(map(float, a)), "runs": rows,
            "max_gap": max(r["gap"] for r in rows)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lp-users", type=int, default=3000, help="simulated users for the LP check (~3.3 decisions each)")
    ap.add_argument("--seed", type=int, default=0)
    _results.add_args(ap)
    args = ap.parse_args()
    pinned = pin_one_cpu()
    out = {
        "host": {"python": platform.python_version(), "numpy": np.__version__, "cpu": pinned},
        "timing": timing(args.users, args.repeats, args.seed),
        "lp": lp_check(args.lp_users, args.seed),
    }
    _results.emit("allocation", out, args)
    if args.json:
        return
    t = out["timing"]
    print(f"{t['users']:,} users × {len(t['amounts'])} amounts: worst median {t['seconds_worst_median']:.3f} s ({pinned})")
    for r in t["runs"]:
        print(f"  budget {r['budget_per_user']:g}/user: {r['seconds_median']:.3f} s, spend ≤ budget {r['spend_le_budget']}, "
              f"parity {r['device_parity']:.4%}")  # fmt: skip
    lp = out["lp"]
    print(f"LP check on {lp['data']} ({lp['decision_points']:,} decision points): max gap {lp['max_gap']:.2e}")


if __name__ == "__main__":
    main()
