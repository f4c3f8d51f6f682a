"""Parity on the host and on cpu-arm (aarch64 onnxruntime and MNN under qemu), side by side.

    python benchmarks/arm_parity.py --json                 # dipn and iidn on sim:600:3, 2 epochs
    python benchmarks/arm_parity.py --models dipn --json

Builds the emulated environment if needed (``edgeintent devices setup cpu-arm``, root), trains
each model briefly, exports onnx and mnn (fp32), plus an mnn fp16 artifact with the GRU/LSTM
converted to While loops (``--set rnn=while-loop``, run at ``precision=low``) and one with the
native RNN op, and prints per artifact and device the worst |Δ| of probabilities and logits,
pass/fail and the wall time. Emulated wall times are parity times, not phone latencies.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.exporters import export_bundle  # noqa: E402
from edgeintent.parity import run_parity  # noqa: E402
from edgeintent.runtimes.providers import provider  # noqa: E402
from edgeintent.runtimes import emulation  # noqa: E402
from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle  # noqa: E402


def rows(report: dict, device: str, seconds: float) -> list[dict]:
    out = []
    for r in report["results"]:
        if r["target"] == "torch":
            continue
        m = r["metrics"]
        out.append({"model": report["model"], "target": r["target"], "precision": r["precision"], "output": r["output"],
                    "device": device, "arch": r["arch"], "prob_max_abs": m["prob_max_abs"],
                    "logit_max_abs": m["logit_max_abs"], "flip_share": m["flip_share"], "passed": r["passed"],
                    "parity_seconds": round(seconds, 1)})  # fmt: skip
    return out


def timed_parity(path: Path, targets: list[str], device: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    report = run_parity(path, targets, provider=provider(device))
    return report, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="dipn,iidn")
    ap.add_argument("--data", default="sim:600:3")
    ap.add_argument("--epochs", type=int, default=2)
    _results.add_args(ap)
    args = ap.parse_args()

    t0 = time.perf_counter()
    setup = emulation.setup()
    result = {"setup": {"seconds": round(time.perf_counter() - t0, 1), "built": setup["built"], "steps": setup["seconds"],
                        "runtimes": setup["runtimes"], "qemu": setup["qemu"], "cpu": setup["cpu"]},
              "rows": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edgeintent-armbench-") as tmp:
        for name in args.models.split(","):
            base = Path(tmp) / name
            train_bundle(name, args.data, base, TrainConfig(epochs=args.epochs))
            fp16 = {}
            for rnn in ("native", "while-loop"):
                fp16[rnn] = Path(tmp) / f"{name}-fp16-{rnn}"
                shutil.copytree(base, fp16[rnn])
                export_bundle(fp16[rnn], "mnn", "fp16", {"rnn": rnn})
            for t in ("onnx", "mnn"):
                export_bundle(base, t)
            for device in ("host", "cpu-arm"):
                report, secs = timed_parity(base, ["onnx", "mnn"], device)
                result["rows"] += rows(report, device, secs)
                for rnn, path in fp16.items():
                    report, secs = timed_parity(path, ["mnn"], device)
                    result["rows"] += [dict(r, rnn=rnn) for r in rows(report, device, secs)]
    _results.emit("arm_parity", result, args)
    if args.json:
        return
    print(f"setup {result['setup']['seconds']} s ({result['setup']['built'] or 'cached'})")
    for r in result["rows"]:
        print(f"{r['model']:5} {r['target']:4} {r['precision']} {r.get('rnn', ''):10} {r['output']:9} {r['device']:7} {r['arch']:7} "
              f"prob {r['prob_max_abs']:.2e} logit {r['logit_max_abs']:.2e} {'pass' if r['passed'] else 'FAIL'} "
              f"({r['parity_seconds']} s)")  # fmt: skip


if __name__ == "__main__":
    main()
