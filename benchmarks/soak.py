"""Soak: many inferences per runtime in one process, and many bundle loads; does the memory grow?

    python benchmarks/soak.py --json                        # trains and exports a small dipn bundle first
    python benchmarks/soak.py --bundle out/demo/dipn --runs 100000 --loads 10000 --json

Each runtime runs in its own fresh process (one thread): ``--warmup`` inferences, then ``--runs``
inferences of one golden row, the resident set size (VmRSS) sampled ten times along the way. The MIL
reference (the CoreML check on Linux, pure numpy) runs ``--mil-runs``. Bundle loads (``load_bundle``,
which verifies every checksum) run in one process too. Reported per runtime: RSS after the warm-up, at
the end, the growth in between, and the growth per 1,000 calls.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)


def _rss() -> int:
    from edgeintent.runtimes.limits import vm_status

    return vm_status()["VmRSS"]


def _soak(call, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        call()
    start = _rss()
    samples = [start]
    t0 = time.perf_counter()
    step = max(runs // 10, 1)
    for i in range(1, runs + 1):
        call()
        if i % step == 0:
            samples.append(_rss())
    seconds = time.perf_counter() - t0
    growth = samples[-1] - start
    return {"calls": runs, "warmup": warmup, "rss_after_warmup_bytes": start, "rss_end_bytes": samples[-1],
            "rss_growth_bytes": growth, "rss_growth_per_1000_calls_bytes": growth / runs * 1000,
            "rss_samples_bytes": samples, "seconds": round(seconds, 2)}  # fmt: skip


def child(kind: str, bundle_dir: str, target: str, feeds_path: str, runs: int, warmup: int) -> dict:
    """One soak in this process (``--child``)."""
    import numpy as np

    from edgeintent.toolkit.bundle import load_bundle

    if kind == "bundle":
        return _soak(lambda: load_bundle(bundle_dir), runs, warmup)
    from edgeintent.exporters import exported_artifacts, load_runner

    bundle = load_bundle(bundle_dir)
    meta = next(m for m in exported_artifacts(bundle, [target]) if m.precision == "fp32")
    feeds = dict(np.load(feeds_path))
    with load_runner(bundle, meta) as session:
        res = _soak(lambda: session.run(feeds), runs, warmup)
        res["runtime"] = session.runtime
    return res


def _bundle(path: str | None, tmp: Path) -> Path:
    if path:
        return Path(path)
    from edgeintent.exporters import export_bundle, get_target
    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    out = tmp / "dipn"
    train_bundle("dipn", "sim:400:3", out, TrainConfig(epochs=1, threads=1))
    for t in ("onnx", "mnn", "coreml"):
        if get_target(t).missing() is None:
            export_bundle(out, t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--mil-runs", type=int, default=2_000)
    ap.add_argument("--loads", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=1_000)
    _results.add_args(ap)
    ap.add_argument("--child", nargs=6, metavar=("KIND", "BUNDLE", "TARGET", "FEEDS", "RUNS", "WARMUP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, bundle, target, feeds, runs, warmup = args.child
        print(json.dumps(child(kind, bundle, target, feeds, int(runs), int(warmup))))
        return

    import numpy as np

    from edgeintent.exporters import exported_artifacts
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.golden import golden_samples
    from edgeintent.toolkit.models.exportable import feeds

    with tempfile.TemporaryDirectory(prefix="edgeintent-soak-") as tmp:
        bundle_dir = _bundle(args.bundle, Path(tmp))
        bundle = load_bundle(bundle_dir)
        feeds_path = Path(tmp) / "feeds.npz"
        np.savez(feeds_path, **feeds(load_model(bundle), golden_samples(bundle.golden), np.arange(1)))
        have = {m.target for m in exported_artifacts(bundle)}
        plan = [("onnxruntime", "onnx", args.runs, args.warmup), ("mnn", "mnn", args.runs, args.warmup),
                ("mil-reference", "coreml", args.mil_runs, min(args.warmup, 100)),
                ("load_bundle", "", args.loads, min(args.warmup, 100))]  # fmt: skip
        rows = {}
        for name, target, runs, warmup in plan:
            if target and target not in have:
                rows[name] = {"skipped": f"nothing exported for {target}"}
                continue
            kind = "bundle" if not target else "runtime"
            cmd = [sys.executable, __file__, "--child", kind, str(bundle_dir), target or "-", str(feeds_path), str(runs), str(warmup)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
            if not args.json:
                r = rows[name]
                print(f"{name:14s} {r['calls']:>7,} calls  RSS {r['rss_after_warmup_bytes'] / 2**20:7.1f} → "
                      f"{r['rss_end_bytes'] / 2**20:7.1f} MB  growth {r['rss_growth_bytes'] / 2**10:+8.1f} KB  "
                      f"({r['seconds']:.0f} s)")  # fmt: skip
    _results.emit("soak", {"bundle": str(args.bundle or "dipn on sim:400:3, 1 epoch"), "rows": rows}, args)


if __name__ == "__main__":
    main()
