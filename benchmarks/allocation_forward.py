"""The model side of ``edgeintent allocate``: P under every coupon amount, streams shared vs one pass per amount.

    python benchmarks/allocation_forward.py --json                          # trains a small iidn, sim:5000
    python benchmarks/allocation_forward.py --bundle out/demo/iidn --source sim:5000 --repeats 2 --json

``predict_by_amount`` gives the purchase probability of every decision point under every amount. iidn's
coupon joins the encoder after the stream encoders (embeddings, LSTMs, attention pooling, cross-time
attention), so the default path runs those once per batch and only the rest per amount; the other variant
runs the whole model once per amount. Both run in this process, pinned to one CPU with one torch thread,
interleaved ``--repeats`` times; the figure is the ratio. Before timing, the two are checked to give the same
bytes of P and S and the same allocation (choice per decision point and λ at a budget of 2 per point).

Without ``--bundle`` an iidn with the default options is trained for one epoch on ``sim:500`` in a temp
directory (the forward cost depends on the model's size, not on how well it is trained).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AMOUNTS = (0.0, 5.0, 10.0, 20.0)


def _train(tmp: str) -> Path:
    out = Path(tmp) / "iidn"
    cmd = [sys.executable, "-m", "edgeintent.cli", "train", "--model", "iidn", "--data", "sim:500", "--out", str(out),
           "--epochs", "1", "--json"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return out


def run(bundle_path: Path, source: str, repeats: int) -> dict:
    import torch

    from edgeintent.decide.allocation import allocate
    from edgeintent.decide.predict import predict_by_amount
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import build_samples

    torch.set_num_threads(1)
    bundle = load_bundle(bundle_path)
    model = load_model(bundle)
    ds = load_source(source)
    samples = build_samples(ds.events, bundle.spec, ds.decisions, streams=list(model.streams))
    variants = {"shared_streams": True, "pass_per_amount": False}
    times: dict[str, list[float]] = {v: [] for v in variants}
    results = {}
    for r in range(repeats):
        for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):  # interleaved, alternating order
            t0 = time.perf_counter()
            results[name] = predict_by_amount(model, samples, AMOUNTS, share_streams=variants[name])
            times[name].append(time.perf_counter() - t0)
    (p, s), (p0, s0) = results["shared_streams"], results["pass_per_amount"]
    same_bytes = p.tobytes() == p0.tobytes() and (s is None and s0 is None or s.tobytes() == s0.tobytes())
    budget = 2.0 * len(samples)
    a, b = allocate(p, budget, AMOUNTS, stay=s), allocate(p0, budget, AMOUNTS, stay=s0)
    same_decisions = bool(np.array_equal(a.choice, b.choice) and a.lam == b.lam)
    if not (same_bytes and same_decisions):
        raise SystemExit(f"shared streams differ from a pass per amount (bytes equal: {same_bytes}, decisions: {same_decisions})")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "bundle": str(bundle_path), "model": bundle.config["model"]["name"], "source": source,
        "decision_points": len(samples), "amounts": list(AMOUNTS), "repeats": repeats, "cores": 1,
        "seconds": {k: {"median": med[k], "runs": v} for k, v in times.items()},
        "ratio_pass_per_amount_to_shared": med["pass_per_amount"] / med["shared_streams"],
        "ratios_per_repeat": [x / y for x, y in zip(times["pass_per_amount"], times["shared_streams"])],
        "same_bytes": same_bytes, "same_decisions": same_decisions,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=None, help="an iidn bundle (default: train a small one)")
    ap.add_argument("--source", default="sim:5000", help="decision points to score (sim:5000: about 17,000)")
    ap.add_argument("--repeats", type=int, default=1)
    _results.add_args(ap)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory(prefix="edgeintent-alloc-fwd-") as tmp:
        out = run(args.bundle or _train(tmp), args.source, args.repeats)
    _results.emit("allocation_forward", out, args)
    if not args.json:
        s = out["seconds"]
        print(f"{out['model']} on {out['decision_points']:,} decision points of {out['source']}, {len(AMOUNTS)} amounts, 1 core")
        print(f"shared streams {s['shared_streams']['median']:.2f} s, a pass per amount {s['pass_per_amount']['median']:.2f} s "
              f"({out['ratio_pass_per_amount_to_shared']:.2f}x); same bytes and decisions")  # fmt: skip


if __name__ == "__main__":
    main()
