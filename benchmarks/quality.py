"""Model quality: one table over models × data, on users held out from training.

    python benchmarks/quality.py --json                       # simulator + Taobao (if ../shared/data exists)
    python benchmarks/quality.py --data sim:8000:1 --models dipn,gbdt --json

For each data set the split (by user), the FeatureSpec and the samples are made once and shared by
every model, so the rows differ only in the model. Each row: AUC per task with a bootstrap 95 % CI
over validation users (who also chose the epoch, so that figure is optimistic), for the simulator the
AUC on a fresh population of the same size (seed + 1000) that took no part in training, parameters,
weight bytes and training seconds (wall clock on this noisy 2-core machine: compare within a run).
DIPN ablations follow the paper's variants.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edgeintent.toolkit.features import build_samples  # noqa: E402
from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402
from edgeintent.toolkit.models.exportable import predict_logits  # noqa: E402
from edgeintent.toolkit.training.trainer import TrainConfig, evaluate_logits, model_size, prepare, train  # noqa: E402

#: row name → (registered model, streams or None for all, options)
VARIANTS: dict[str, tuple[str, tuple[str, ...] | None, dict]] = {
    "dipn": ("dipn", None, {}),
    "dipn-tiny": ("dipn-tiny", None, {}),
    "dipn no-attention": ("dipn", None, {"attention": False}),
    "dipn no-intra": ("dipn", None, {"intra": False}),
    "dipn no-inter": ("dipn", None, {"inter": False}),
    "dipn no-multitask": ("dipn", None, {"multitask": False}),
    "dipn cloud-only": ("dipn", ("cloud",), {}),
    "dipn no-gesture": ("dipn", ("click", "cloud"), {}),
    "dipn no-click": ("dipn", ("gesture", "cloud"), {}),
    "iidn": ("iidn", None, {}),
    "rnn": ("rnn", None, {}),
    "gbdt": ("gbdt", None, {}),
}


def run(source: str, rows: list[str], cfg: TrainConfig) -> list[dict]:
    ds = load_source(source)
    t0 = time.perf_counter()
    prep = prepare(ds, cfg.seed, cfg.valid_share)
    prep_s = time.perf_counter() - t0
    # The validation users also chose each model's epoch (early stopping), so their AUC is optimistic.
    # For the simulator, every model is also scored on a fresh population that took no part in training.
    fresh = None
    if source.startswith("sim:"):
        parts = source.split(":")
        fresh_src = f"sim:{parts[1]}:{(int(parts[2]) if len(parts) > 2 else 0) + 1000}"
        fds = load_source(fresh_src)
        fresh = (fresh_src, build_samples(fds.events, prep.spec, fds.decisions))
    out = []
    for row in rows:
        name, streams, options = VARIANTS[row]
        if streams is not None and (set(streams) - set(prep.spec.streams) or set(streams) == set(prep.spec.streams)):
            continue  # a stream ablation this data cannot express (e.g. no gestures in Taobao)
        streams = streams or tuple(prep.spec.streams)
        r = train(name, ds, cfg, streams=streams, options=options, prepared=prep)
        metrics = evaluate_logits(prep.samples, prep.valid_idx, r.valid_logits, seed=cfg.seed)
        fresh_metrics = {}
        if fresh is not None:
            idx = np.arange(len(fresh[1]))
            fresh_metrics = evaluate_logits(fresh[1], idx, predict_logits(r.model, fresh[1], idx), seed=cfg.seed)
        params, size = model_size(r.model)
        out.append({
            "data": source,
            "row": row,
            "model": name,
            "streams": list(streams),
            "auc": {t: m["auc"] for t, m in metrics.items()},
            "auc_ci": {t: m["auc_ci"] for t, m in metrics.items()},
            "fresh_population": fresh[0] if fresh else None,
            "auc_fresh": {t: m["auc"] for t, m in fresh_metrics.items()},
            "auc_fresh_ci": {t: m["auc_ci"] for t, m in fresh_metrics.items()},
            "parameters": params,
            "weight_bytes": size,
            "train_seconds": round(r.seconds, 1),
            "best_epoch": r.best_epoch,
            "valid_samples": int(len(prep.valid_idx)),
            "valid_users": int(len(set(prep.samples.user_id[prep.valid_idx].tolist()))),
            "featurize_seconds": round(prep_s, 2),
        })  # fmt: skip
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    taobao = DEFAULT_SHARED_DATA / "taobao_userbehavior"
    default_data = ["sim:8000:1"] + ([f"taobao:{taobao}"] if taobao.exists() else [])
    ap.add_argument("--data", default=",".join(default_data))
    ap.add_argument("--models", default=",".join(VARIANTS), help=f"rows among: {', '.join(VARIANTS)}")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patience", type=int, default=3, help="early-stopping patience (epochs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [r.strip() for r in args.models.split(",") if r.strip()]
    unknown = [r for r in rows if r not in VARIANTS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose among {list(VARIANTS)}")
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads, patience=args.patience)
    results = []
    for source in args.data.split(","):
        results += run(source, rows, cfg)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
        if r["auc_fresh"]:
            aucs += " | fresh " + ", ".join(f"{t} {v:.4f}" for t, v in r["auc_fresh"].items())
        print(f"{r['data'][:30]:30s} {r['row']:18s} {aucs:40s} {r['parameters']:>8,} params {r['train_seconds']:>6.0f} s")


if __name__ == "__main__":
    main()
