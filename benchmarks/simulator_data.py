"""What the simulator's data looks like, and where its purchase signal lies (the tables of docs/simulator.md).

    python benchmarks/simulator_data.py --json
    python benchmarks/simulator_data.py --users 20000 --write-results

``data``: on ``sim:USERS:1``, sessions per user, events per session per stream, the cloud action mix, the buy
rate within 30 min per decision point (overall and per coupon amount) and the AUC of the true ``p_buy`` at the
offered amount (the ceiling any model can reach).

``signal``: on ``sim:USERS:0``, users split by ``user_id % 3`` (one third held out), gradient boosting on
per-window aggregates (last 50 gestures / 20 clicks / 20 cloud events before t, plus the offer) against a buy
within 30 min: all streams, the cloud stream only, the best single aggregate and the add_to_cart count; then the
review-then-cart timing: the buy rate of decisions whose last 20 minutes hold a slow detail/reviews scroll
followed by add_to_cart within 3 s, both events but not so coupled, or neither. The aggregate helpers are the
ones ``tests/test_simulate.py`` asserts the shape of these results with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.toolkit.data.simulator import SimConfig, simulate  # noqa: E402


def data_table(users: int, seed: int) -> dict:
    sim = simulate(SimConfig(users=users, seed=seed))
    n = {s: sim.events.stream(s).num_rows for s in ("gesture", "click", "cloud")}
    d = sim.decisions
    S = d.num_rows
    actions = sim.events.stream("cloud").column("action").cast("string").to_numpy(zero_copy_only=False)
    offer = d.column("offer").to_numpy()
    amounts = sorted(set(offer.tolist()))
    k = np.searchsorted(amounts, offer)
    buy = np.stack(d.column("buy").to_numpy(zero_copy_only=False))
    p = np.stack(d.column("p_buy").to_numpy(zero_copy_only=False))
    realised = buy[np.arange(S), k]
    return {
        "source": f"sim:{users}:{seed}",
        "sessions_per_user": S / users,
        "events_per_session": {s: c / S for s, c in n.items()},
        "cloud_action_mix": {a: float(np.mean(actions == a)) for a in ("view", "cart", "fav", "buy")},
        "buy_30min_rate": float(realised.mean()),
        "buy_30min_rate_per_amount": {str(a): float(r) for a, r in zip(amounts, buy.mean(axis=0))},
        "auc_true_p_buy": float(roc_auc_score(realised, p[np.arange(S), k])),
    }


def signal_table(users: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_simulate import _review_then_cart, _signal_aucs  # the tests assert the shape of these figures

    sim = simulate(SimConfig(users=users, seed=0))
    auc_all, auc_cloud, single = _signal_aucs(sim)
    best = max(single, key=single.get)
    r = _review_then_cart(sim)
    yr, hc, both = r["y"], r["has_coupled"], r["both"]
    return {
        "source": f"sim:{users}:0, users with user_id % 3 == 0 held out",
        "auc": [
            {"inputs": "all streams", "auc": float(auc_all)},
            {"inputs": "cloud stream only", "auc": float(auc_cloud)},
            {"inputs": f"best single aggregate ({best})", "auc": float(single[best])},
            {"inputs": "add_to_cart count", "auc": float(max(single[f"c{w}_w_add_to_cart"] for w in (20, 10, 4)))},
        ],
        "review_then_cart": [
            {"last 20 minutes hold": "slow detail/reviews scroll, then add_to_cart within 3 s",
             "share of decisions": float(hc.mean()), "buy within 30 min": float(yr[hc].mean())},
            {"last 20 minutes hold": "both events, not so coupled",
             "share of decisions": float((both & ~hc).mean()), "buy within 30 min": float(yr[both & ~hc].mean())},
            {"last 20 minutes hold": "neither", "share of decisions": float((~both).mean()),
             "buy within 30 min": float(yr[~both].mean())},
        ],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20_000)
    _results.add_args(ap)
    args = ap.parse_args()
    out = {"data": data_table(args.users, 1), "signal": signal_table(args.users)}
    _results.emit("simulator_data", out, args)
    if not args.json:
        import json

        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
