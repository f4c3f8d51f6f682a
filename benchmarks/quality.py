"""Model quality: one table over models × data, on users held out from training.

    python benchmarks/quality.py --json                       # simulator + Taobao (if ../shared/data exists)
    python benchmarks/quality.py --data sim:8000:1 --models dipn,gbdt --json

For each data set the split (by user), the FeatureSpec and the samples are made once and shared by
every model, so the rows differ only in the model. Each row: AUC per task with a bootstrap 95 % CI
over validation users (who also chose the epoch, so that figure is optimistic), for the simulator the
AUC on a fresh population of the same size (seed + 1000) that took no part in training, parameters,
weight bytes and training seconds (wall clock on this noisy 2-core machine: compare within a run).
DIPN ablations follow the paper's variants.

The funnel table (``--funnel``; rows of ``FUNNEL_VARIANTS``, the AITM paper's comparisons on the same
encoders): per funnel step the AUC on every validation decision point and on those that reached the
previous step, ECE, the share of rows with p_k > p_{k−1}, and each row's buy AUC minus AITM's with a
paired bootstrap 95 % CI over validation users (the same resampled users for both models).

    python benchmarks/quality.py --data taobao:../shared/data/taobao_userbehavior --models none --json
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

from edgeintent.toolkit.features import build_samples  # noqa: E402
from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402
from edgeintent.toolkit.models.exportable import predict_logits  # noqa: E402
from edgeintent.toolkit.training import metrics as M  # noqa: E402
from edgeintent.toolkit.training.trainer import (  # noqa: E402
    TrainConfig,
    cross_fit,
    evaluate_funnel,
    evaluate_logits,
    model_size,
    prepare,
    train,
)

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

#: funnel row → (tasks upstream first, aitm options); the first row is the one the others are compared with
FUNNEL_VARIANTS: dict[str, tuple[tuple[str, ...], dict]] = {
    "aitm": (("engage_rt", "buy_rt"), {}),
    "aitm penalty-only": (("engage_rt", "buy_rt"), {"max_violation": 1.0}),
    "aitm no-calibrator": (("engage_rt", "buy_rt"), {"calibrator": 0.0}),
    "aitm no-ait": (("engage_rt", "buy_rt"), {"transfer": "none"}),
    "shared-bottom": (("engage_rt", "buy_rt"), {"transfer": "none", "calibrator": 0.0}),
    "esmm": (("engage_rt", "buy_rt"), {"transfer": "esmm", "calibrator": 0.0}),
    "mmoe": (("engage_rt", "buy_rt"), {"transfer": "mmoe", "calibrator": 0.0}),
    "aitm 3-step": (("browse_rt", "engage_rt", "buy_rt"), {}),
}


def paired_delta(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, groups: np.ndarray, seed: int) -> dict:
    """AUC(b) − AUC(a) and its paired 95 % bootstrap CI over users (same resamples for both)."""
    va = M.bootstrap_values(M.auc, y, p_a, seed=seed, groups=groups)
    vb = M.bootstrap_values(M.auc, y, p_b, seed=seed, groups=groups)
    lo, hi = np.percentile(vb - va, [2.5, 97.5])
    return {"delta": M.auc(y, p_b) - M.auc(y, p_a), "ci": [float(lo), float(hi)]}


def run_funnel(source: str, rows: list[str], cfg: TrainConfig) -> list[dict]:
    ds = load_source(source)
    prep = prepare(ds, cfg.seed, cfg.valid_share)
    va = prep.valid_idx
    obs = prep.samples.observed["buy_rt"][va]
    y, groups = prep.samples.labels["buy_rt"][va][obs], prep.samples.user_id[va][obs]
    out, ref = [], None
    for row in rows:
        tasks, options = FUNNEL_VARIANTS[row]
        r = train("aitm", ds, cfg, tasks=tasks, options=options, prepared=prep)
        funnel = evaluate_funnel(prep.samples, va, r.valid_logits, seed=cfg.seed)
        p_buy = r.valid_logits["buy_rt"][obs]
        ref = ref if ref is not None else (row, p_buy)
        params, size = model_size(r.model)
        out.append({
            "data": source,
            "row": row,
            "tasks": list(tasks),
            "options": options,
            "steps": funnel["steps"],
            "order_breaks": funnel.get("order_breaks"),
            f"buy_auc_minus_{ref[0]}": paired_delta(y, ref[1], p_buy, groups, cfg.seed),
            "parameters": params,
            "weight_bytes": size,
            "train_seconds": round(r.seconds, 1),
            "best_epoch": r.best_epoch,
            "valid_samples": int(len(va)),
            "valid_users": int(len(np.unique(prep.samples.user_id[va]))),
        })  # fmt: skip
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def run_funnel_folds(source: str, rows: list[str], cfg: TrainConfig, folds: int) -> list[dict]:
    """The funnel rows under K-fold cross-fitting by user (``trainer.cross_fit``): each fold's users take no
    part in the spec fit, training or early stopping. Per row: each step's AUC averaged over folds, the buy
    AUC's and the paired Δ vs the first row's 95 % CIs from a bootstrap that resamples users within each
    fold (the same resamples for every row), the violation share over every test row."""
    ds = load_source(source)
    per_row: dict[str, list[dict]] = {row: [] for row in rows}
    tests = []
    for fold in cross_fit(ds, folds, cfg.seed, cfg.valid_share):
        test = fold.test
        tests.append(test)
        for row in rows:
            tasks, options = FUNNEL_VARIANTS[row]
            r = train("aitm", ds, cfg, tasks=tasks, options=options, prepared=fold.prepared)
            logits = predict_logits(r.model, test, np.arange(len(test)))
            funnel = evaluate_funnel(test, np.arange(len(test)), logits, seed=cfg.seed)
            per_row[row].append({"logits": logits, "best_epoch": r.best_epoch, "seconds": r.seconds, "model": r.model,
                                 "funnel": funnel})  # fmt: skip
            print(json.dumps({"fold": fold.index, "row": row, "buy_auc": funnel["steps"][-1]["auc"]}), file=sys.stderr, flush=True)

    def boot(row: str) -> np.ndarray:  # the buy AUC on each resample, averaged over folds
        vals = []
        for test, fit in zip(tests, per_row[row]):
            obs = test.observed["buy_rt"]
            vals.append(M.bootstrap_values(M.auc, test.labels["buy_rt"][obs], fit["logits"]["buy_rt"][obs],
                                           seed=cfg.seed, groups=test.user_id[obs]))  # fmt: skip
        n = min(len(v) for v in vals)
        return np.mean([v[:n] for v in vals], axis=0)

    boots = {row: boot(row) for row in rows}
    ref_row, out = rows[0], []
    ref = boots[ref_row]
    for row in rows:
        fits, mine = per_row[row], boots[row]
        n = min(len(ref), len(mine))
        steps = []
        for k, task in enumerate(fits[0]["funnel"]["steps"]):
            st = [f["funnel"]["steps"][k] for f in fits]
            step = {"task": task["task"], "auc": float(np.mean([s["auc"] for s in st])), "auc_per_fold": [s["auc"] for s in st]}
            if k == len(fits[0]["funnel"]["steps"]) - 1:
                step["auc_ci"] = [float(x) for x in np.percentile(mine, [2.5, 97.5])]
            if k > 0:
                rows_k = np.array([len(t) for t in tests])
                step["auc_given_prev"] = float(np.mean([s["auc_given_prev"] for s in st]))
                step["violation"] = float(np.sum(rows_k * np.array([s["violation"] for s in st])) / rows_k.sum())
                step["violation_per_fold"] = [s["violation"] for s in st]
            steps.append(step)
        per_fold = [steps[-1]["auc_per_fold"][i] - per_row[ref_row][i]["funnel"]["steps"][-1]["auc"] for i in range(len(tests))]
        lo, hi = np.percentile(mine[:n] - ref[:n], [2.5, 97.5])
        params, size = model_size(fits[0]["model"])
        out.append({
            "data": source,
            "row": row,
            "tasks": list(FUNNEL_VARIANTS[row][0]),
            "options": FUNNEL_VARIANTS[row][1],
            "folds": folds,
            "steps": steps,
            f"buy_auc_minus_{ref_row}": {"delta": float(np.mean(per_fold)), "ci": [float(lo), float(hi)],
                                         "per_fold": per_fold, "folds_above": int(np.sum(np.array(per_fold) > 0))},
            "parameters": params,
            "weight_bytes": size,
            "train_seconds": round(float(np.mean([f["seconds"] for f in fits])), 1),
            "best_epoch": [f["best_epoch"] for f in fits],
            "test_samples": int(sum(len(t) for t in tests)),
            "test_users": int(sum(len(np.unique(t.user_id)) for t in tests)),
        })  # fmt: skip
    return out


def print_funnel(results: list[dict]) -> None:
    for r in results:
        steps = " | ".join(
            f"{s['task']} {s['auc']:.4f}" + (f" (|prev {s['auc_given_prev']:.4f}, p>prev {s['violation']:.2%})" if "violation" in s else "")
            for s in r["steps"]
        )
        delta = next(v for k, v in r.items() if k.startswith("buy_auc_minus_"))
        print(f"{r['data'][:30]:30s} {r['row']:18s} {steps}  Δbuy {delta['delta']:+.4f} "
              f"[{delta['ci'][0]:+.3f}, {delta['ci'][1]:+.3f}] {r['parameters']:>8,} params {r['weight_bytes'] / 1024:.0f} KB")  # fmt: skip


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


def table(rows: list[dict]) -> str:
    """The Markdown tables of docs/results/quality-*.md: models, then the funnel rows."""

    def ci(v) -> str:
        return "[{:.3f}, {:.3f}]".format(*v) if v else ""

    def num(v, fmt: str = "{:.3f}") -> str:
        return "–" if v is None else fmt.format(v)

    out = []
    models = [r for r in rows if "steps" not in r]
    if models:
        out += ["| data | row | buy_rt AUC [95 % CI] | buy_long AUC | stay AUC | fresh population buy_rt AUC "
                "| parameters | train s | best epoch |", "|---|---|---|---|---|---|---|---|---|"]
        for r in models:
            a, c = r["auc"], r["auc_ci"]
            fresh = ((r.get("fresh_population") or {}).get("auc") or {}).get("buy_rt")
            cells = [r["data"].split(":")[0], r["row"], f"{num(a['buy_rt'])} {ci(c.get('buy_rt'))}",
                     num(a.get("buy_long")), num(a.get("stay")), num(fresh), f"{r['parameters']:,}",
                     f"{r['train_seconds']:.0f}", str(r["best_epoch"])]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    funnel = [r for r in rows if "steps" in r]
    if funnel:
        out += ["| data | row | steps | AUC per step | buy AUC [95 % CI] | buy AUC given previous step "
                "| rows with p_k > p_k−1 | Δ buy AUC vs aitm [95 % CI] | parameters |", "|---|---|---|---|---|---|---|---|---|"]
        for r in funnel:
            st, d = r["steps"], r["buy_auc_minus_aitm"]
            buy = st[-1]
            viol = max((x.get("violation") or 0.0) for x in st[1:])
            cells = [r["data"].split(":")[0], r["row"], " → ".join(x["task"] for x in st),
                     " / ".join(num(x["auc"]) for x in st), f"{num(buy['auc'])} {ci(buy['auc_ci'])}",
                     num(buy.get("auc_given_prev")), f"{viol:.3%}",
                     "–" if r["row"] == "aitm" else f"{d['delta']:+.3f} {ci(d['ci'])}" + (
                         f" ({d['folds_above']} of {r['folds']} folds > 0)" if "folds" in r else ""), f"{r['parameters']:,}"]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    taobao = DEFAULT_SHARED_DATA / "taobao_userbehavior"
    default_data = ["sim:8000:1"] + ([f"taobao:{taobao}"] if taobao.exists() else [])
    ap.add_argument("--data", default=",".join(default_data))
    ap.add_argument("--models", default=",".join(VARIANTS), help=f"rows among: {', '.join(VARIANTS)} (none: skip)")
    ap.add_argument("--funnel", default=",".join(FUNNEL_VARIANTS),
                    help=f"funnel rows among: {', '.join(FUNNEL_VARIANTS)} (none: skip)")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patience", type=int, default=3, help="early-stopping patience (epochs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folds", type=int, default=0,
                    help="funnel rows under K-fold cross-fitting by user (every user a test user once; 0: one split)")  # fmt: skip
    _results.add_args(ap)
    args = ap.parse_args()
    rows = [r.strip() for r in args.models.split(",") if r.strip() and r.strip() != "none"]
    unknown = [r for r in rows if r not in VARIANTS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose among {list(VARIANTS)}")
    funnel_rows = [r.strip() for r in args.funnel.split(",") if r.strip() and r.strip() != "none"]
    unknown = [r for r in funnel_rows if r not in FUNNEL_VARIANTS]
    if unknown:
        ap.error(f"unknown funnel rows {unknown}; choose among {list(FUNNEL_VARIANTS)}")
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads, patience=args.patience)
    results, funnel = [], []
    for source in args.data.split(","):
        results += run(source, rows, cfg) if rows else []
        if funnel_rows:
            funnel += run_funnel_folds(source, funnel_rows, cfg, args.folds) if args.folds else run_funnel(source, funnel_rows, cfg)
    name = "quality-" + "-".join(s.split(":")[0] if s.startswith("taobao:") else s.replace(":", "-") for s in args.data.split(","))
    name += f"-{args.folds}fold" if args.folds else ""
    _results.emit(name, results + funnel, args, table=table)
    if args.json:
        return
    print_funnel(funnel)
    for r in results:
        aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
        if r["auc_fresh"]:
            aucs += " | fresh " + ", ".join(f"{t} {v:.4f}" for t, v in r["auc_fresh"].items())
        print(f"{r['data'][:30]:30s} {r['row']:18s} {aucs:40s} {r['parameters']:>8,} params {r['train_seconds']:>6.0f} s")


if __name__ == "__main__":
    main()
