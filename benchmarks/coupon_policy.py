"""IIDN's coupon response, judged by the allocation it leads to: MCKP on its predictions against give-all.

    python benchmarks/coupon_policy.py --json                                     # the default IIDN
    python benchmarks/coupon_policy.py --set '{"coupon_response": "input"}' --json # the paper's IIDN
    python benchmarks/coupon_policy.py --train sim:20000:2 --fresh sim:10000:1002 --seed 1 --json
    python benchmarks/coupon_policy.py --bundle out/iidn-sim --json                # score a trained bundle

Trains ``--model`` (IIDN by default) on ``--train`` the way ``edgeintent train`` does (split by user,
early stopping on the validation users' buy_rt AUC, one thread), then scores every policy of
``edgeintent policy-eval`` on ``--fresh``, a simulated population that took no part in training, at
2.5, 5 and 10 per decision point. Printed: MCKP's incremental purchases per unit cost as a multiple of
give-all's and of the oracle's (the same solver on the true probabilities), the correlation of the
predicted uplift P(20) − P(0) with the true one, and the AUC of P at the offered amount. No bundle is
written; ``edgeintent train`` + ``edgeintent policy-eval`` give the same figures for the same settings.
``--bundle DIR`` skips the training and scores that bundle's model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
import numpy as np  # noqa: E402

from edgeintent.decide.policy import (  # noqa: E402
    PolicyInputs,
    evaluate_policies,
    outcomes_from_decisions,
    ratios,
)
from edgeintent.decide.run import predict_decisions  # noqa: E402
from edgeintent.toolkit.training import metrics as M  # noqa: E402
from edgeintent.toolkit.bundle import load_bundle  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402
from edgeintent.toolkit.training.trainer import TrainConfig, train  # noqa: E402
from edgeintent.toolkit.bundle import load_model  # noqa: E402

PER_POINT = (2.5, 5.0, 10.0)


def run(model: str, train_src: str, fresh_src: str, options: dict, cfg: TrainConfig, bundle: str | None = None) -> dict:
    t0 = time.perf_counter()
    if bundle:
        loaded = load_bundle(bundle)
        net, spec, best_epoch = load_model(loaded), loaded.spec, loaded.metrics.get("best_epoch")
        model, train_src, options = loaded.config["model"]["name"], f"bundle {bundle}", {}
        seed = loaded.config["train"]["seed"]
    else:
        res = train(model, load_source(train_src), cfg, options=options)
        net, spec, best_epoch, seed = res.model, res.prepared.spec, res.best_epoch, cfg.seed
    train_s = time.perf_counter() - t0
    fresh = load_source(fresh_src)
    amounts = outcomes_from_decisions(fresh.decisions, fresh_src).amounts
    _, decisions, p, s = predict_decisions(net, spec, fresh, amounts)
    truth = outcomes_from_decisions(decisions, fresh_src)
    n = p.shape[0]
    rows = evaluate_policies(PolicyInputs(p, s, truth), [b * n for b in PER_POINT])
    offered = np.searchsorted(truth.amounts, np.asarray(decisions.column("offer").to_numpy(), np.float64))
    at_offer = np.arange(n), offered
    return {
        "model": model, "options": options, "train": train_src, "fresh": fresh_src, "seed": seed,
        "best_epoch": best_epoch, "train_seconds": round(train_s, 1), "decision_points": n,
        "fresh_auc_at_offer": round(float(M.auc(truth.buy[at_offer], p[at_offer])), 4),
        "uplift_corr": round(float(np.corrcoef(truth.p[:, -1] - truth.p[:, 0], p[:, -1] - p[:, 0])[0, 1]), 3),
        "budget_per_point": list(PER_POINT),
        "mckp_vs_give_all": [round(r["vs_give-all"], 3) for r in ratios(rows)],
        "mckp_vs_oracle": [round(r["vs_oracle"], 3) for r in ratios(rows)],
        "rows": rows,
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="iidn")
    ap.add_argument("--set", default="{}", help="model options as JSON, e.g. '{\"coupon_response\": \"input\"}'")
    ap.add_argument("--train", default="sim:20000:1")
    ap.add_argument("--fresh", default="sim:10000:1001")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bundle", help="score this trained bundle instead of training")
    _results.add_args(ap)
    a = ap.parse_args()
    cfg = TrainConfig(epochs=a.epochs, patience=a.patience, seed=a.seed, threads=a.threads)
    out = run(a.model, a.train, a.fresh, json.loads(a.set), cfg, a.bundle)
    _results.emit("coupon_policy", out, a)
    if not a.json:
        print(f"{a.model} {out['options']} trained on {a.train} (seed {a.seed}, best epoch {out['best_epoch']}), "
              f"scored on {a.fresh}: uplift corr {out['uplift_corr']}")  # fmt: skip
        for b, g, o in zip(PER_POINT, out["mckp_vs_give_all"], out["mckp_vs_oracle"]):
            print(f"  {b:>4} per point: mckp {g:.2f}x give-all, {o:.2f}x oracle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
