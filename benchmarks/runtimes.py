"""The same model on every runtime here, in one run: onnxruntime, MNN, torch eager (and OpenVINO when installed).

    python benchmarks/runtimes.py --json                       # trains a small dipn bundle first (~1 min)
    python benchmarks/runtimes.py --bundle out/demo/dipn --json

Every runtime is measured with ``edgeintent bench``'s machinery: one fresh process per variant, pinned
to one CPU, one thread, on the same realistic request (full windows), ``--runs`` steady runs after a
warm-up. No memory cap (profile ``host``). The ratios are to the fastest p50 in this run; the machine
is shared, so read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.runtime_sim.bench import BenchConfig, run_bench, stats  # noqa: E402

OPENVINO_CHILD = """
import json, sys, time, os
import numpy as np
os.sched_setaffinity(0, set(json.loads(sys.argv[3])))
import openvino as ov
core = ov.Core()
f = dict(np.load(sys.argv[2]))
t0 = time.perf_counter_ns()
model = core.compile_model(sys.argv[1], "CPU", {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
req = model.create_infer_request()
init = (time.perf_counter_ns() - t0) / 1e6
for _ in range(int(sys.argv[5])):
    req.infer(f)
times = []
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter_ns(); req.infer(f); times.append((time.perf_counter_ns() - t0) / 1e6)
print(json.dumps({"init_ms": init, "times_ms": times, "version": ov.__version__}))
"""


def _bundle(path: str | None, tmp: Path) -> Path:
    if path:
        return Path(path)
    from edgeintent.exporters import export_bundle, get_target
    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    out = tmp / "dipn"
    train_bundle("dipn", "sim:600:3", out, TrainConfig(epochs=2, threads=1))
    export_bundle(out, "onnx")
    if get_target("mnn").run_missing() is None:
        export_bundle(out, "mnn")
    return out


def _openvino(bundle: Path, runs: int, warmup: int) -> dict | None:
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return None
    from edgeintent.toolkit.models.exportable import feeds
    from edgeintent.toolkit.bundle import load_bundle
    from edgeintent.toolkit.golden import golden_samples
    from edgeintent.toolkit.bundle import load_model

    import numpy as np

    b = load_bundle(bundle)
    model = load_model(b)
    g = golden_samples(b.golden)
    full = np.flatnonzero(g.length[model.streams[0]] == g.x[model.streams[0]].shape[1])
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "f.npz", **feeds(model, g, full[:1] if len(full) else np.arange(1)))
        from edgeintent.runtimes.limits import child_env, pick_cpus

        proc = subprocess.run([sys.executable, "-c", OPENVINO_CHILD, str(bundle / "exports/onnx/model.onnx"),
                               str(Path(tmp) / "f.npz"), json.dumps(list(pick_cpus(1))), str(runs), str(warmup)],
                              capture_output=True, text=True, env=child_env(1))  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"runtime": f"openvino {res['version']}", "init_ms": res["init_ms"], **stats(res["times_ms"]),
            "note": "golden full-width row, not bench's request"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="a bundle with onnx (and mnn) exports; default: train a small one")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    _results.add_args(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeintent-runtimes-") as tmp:
        bundle = _bundle(args.bundle, Path(tmp))
        targets = tuple(t for t in ("onnx", "mnn") if (bundle / "exports" / t).exists())
        rep = run_bench(bundle, BenchConfig(device="host", targets=targets, runs=args.runs, warmup=args.warmup))
        rows = {}
        for r in rep["rows"]:
            if "measured" in r and r["precision"] == "fp32":
                m = r["measured"]
                rows[r["runtime"]] = {k: m[k] for k in ("init_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms")}
        ov = _openvino(bundle, args.runs, args.warmup)
        notes = ["openvino: not installed"] if ov is None else []
        if ov is not None and "error" not in ov:
            rows[ov.pop("runtime")] = {k: v for k, v in ov.items() if k.endswith("_ms")}
            notes.append(ov["note"])
        elif ov is not None:
            notes.append(f"openvino failed: {ov['error']}")
    fastest = min(rows, key=lambda k: rows[k]["p50_ms"])
    for v in rows.values():
        v["p50_ratio_to_fastest"] = v["p50_ms"] / rows[fastest]["p50_ms"]
        v["mean_ratio_to_fastest"] = v["mean_ms"] / rows[fastest]["mean_ms"]
    out = {"bundle": str(bundle) if args.bundle else "a fresh dipn bundle (sim:600:3, 2 epochs)", "model": rep["model"],
           "request": rep["request"], "limits": rep["limits"]["label"], "runs": args.runs, "fastest": fastest,
           "runtimes": rows, "notes": notes}  # fmt: skip
    _results.emit("runtimes", out, args)
    if not args.json:
        for k, v in sorted(rows.items(), key=lambda kv: kv[1]["p50_ms"]):
            print(f"{k:28s} p50 {v['p50_ms']:.3f} ms  ×{v['p50_ratio_to_fastest']:.2f}")


if __name__ == "__main__":
    main()
