"""The executorch target's variants side by side with onnxruntime, in one run: export cost, size, planned
memory and bench p50 of the same dipn bundle.

    python benchmarks/executorch_variants.py --json                      # trains a small dipn bundle first
    python benchmarks/executorch_variants.py --bundle out/demo/dipn --variants xnnpack/scan,portable/scan --json

Variants are ``backend/rnn`` (``--set backend=… rnn=…`` of ``edgeintent export --target executorch``).
Each is exported into its own copy of the bundle; the export is timed in process CPU seconds (the host
is shared: wall time says more about the other processes). Every artifact is benched with ``edgeintent
bench``'s machinery (profile ``host``: one fresh process per variant, pinned to one CPU, one thread, no
memory cap, the same realistic request); the ratios are to onnxruntime's p50 in the same run. For each
.pte the ETDump profile's top operators and the planned memory come from bench's runtime details.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.runtime_sim.bench import BenchConfig, run_bench  # noqa: E402

DEFAULT_VARIANTS = "xnnpack/scan,portable/scan,xnnpack/unrolled"
SOURCE = "sim:600:3"


def _timed_export(bundle: Path, target: str, options: dict | None = None) -> tuple[object, float, float]:
    from edgeintent.exporters import export_bundle

    c0, w0 = time.process_time(), time.perf_counter()
    meta = export_bundle(bundle, target, options=options)
    return meta, time.process_time() - c0, time.perf_counter() - w0


def _p50(rep: dict, target: str) -> dict:
    row = next(r for r in rep["rows"] if r["target"] == target and "measured" in r)
    m = row["measured"]
    return {"runtime": row["runtime"], "bytes": row["artifact_bytes"], "init_ms": m["init_ms"], "first_ms": m["first_ms"],
            "p50_ms": m["p50_ms"], "p99_ms": m["p99_ms"], "runtime_details": row.get("runtime_details")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="a trained bundle (copied; default: train dipn on sim:600:3, 2 epochs)")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma list of backend/rnn (default {DEFAULT_VARIANTS})")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    _results.add_args(ap)
    args = ap.parse_args()
    variants = [tuple(v.split("/")) for v in args.variants.split(",")]
    with tempfile.TemporaryDirectory(prefix="edgeintent-executorch-") as tmp:
        base = Path(tmp) / "base"
        if args.bundle:
            shutil.copytree(args.bundle, base)
        else:
            from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

            train_bundle("dipn", SOURCE, base, TrainConfig(epochs=2, threads=1))
        shutil.rmtree(base / "exports", ignore_errors=True)
        from edgeintent.toolkit.bundle import load_bundle

        spec = load_bundle(base).spec
        _, cpu, wall = _timed_export(base, "onnx")
        cfg = BenchConfig(device="host", targets=("onnx",), runs=args.runs, warmup=args.warmup)
        onnx = {"export_cpu_s": cpu, "export_wall_s": wall, **_p50(run_bench(base, cfg), "onnx")}
        rows = {}
        for backend, rnn in variants:
            d = Path(tmp) / f"{backend}-{rnn}"
            shutil.copytree(base, d)
            meta, cpu, wall = _timed_export(d, "executorch", {"backend": backend, "rnn": rnn})
            cfg = BenchConfig(device="host", targets=("executorch",), runs=args.runs, warmup=args.warmup)
            b = _p50(run_bench(d, cfg), "executorch")
            rows[f"{backend}/{rnn}"] = {"export_cpu_s": cpu, "export_wall_s": wall, **{k: meta.extra[k] for k in
                                        ("planned_memory_bytes", "delegate_calls", "instructions")}, **b,
                                        "p50_ratio_to_onnxruntime": b["p50_ms"] / onnx["p50_ms"]}  # fmt: skip
    out = {"bundle": args.bundle or f"a fresh dipn bundle ({SOURCE}, 2 epochs)", "max_len": dict(spec.max_len),
           "runs": args.runs, "onnxruntime": onnx, "executorch": rows,
           "notes": ["export times are process CPU seconds of export_bundle (torch.export + lowering + serialisation)",
                     "bench profile host: one pinned CPU, one thread; ratios to onnxruntime's p50 in this run"]}  # fmt: skip
    _results.emit("executorch_variants", out, args)
    if not args.json:
        print(f"onnxruntime: p50 {onnx['p50_ms']:.3f} ms, {onnx['bytes'] / 1024:.0f} KB, export {onnx['export_cpu_s']:.1f} CPU-s")
        for k, v in rows.items():
            print(f"executorch {k:18s} p50 {v['p50_ms']:.3f} ms ×{v['p50_ratio_to_onnxruntime']:.2f} of onnxruntime, "
                  f"{v['bytes'] / 1024:.0f} KB, export {v['export_cpu_s']:.1f} CPU-s, planned {v['planned_memory_bytes'] / 1024:.0f} KB")


if __name__ == "__main__":
    main()
