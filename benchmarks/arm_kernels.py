"""Accuracy of the runtimes' elementwise kernels (exp, sigmoid, tanh), on the host and on cpu-arm.

    python benchmarks/arm_kernels.py --json

One ONNX graph (Exp, Sigmoid, Tanh of one input) and its MNN conversion run in each runtime, on the
host and in the emulated aarch64 python (``edgeintent devices setup cpu-arm``, root), over a dense
grid: exp on [0, log1p(7200)] (the ages TimeCrossAttention turns into seconds), sigmoid and tanh on
[−8, 8]. Prints, per runtime and device, the worst relative error of exp against float64, the
absolute error that means in seconds at a 2-hour age, and the worst absolute error of sigmoid and
tanh. This is why ``models/base.py`` computes seconds with ``exact_exp`` and why the parity table
has an aarch64 row for MNN fp32 (``parity/policy.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeintent.exporters.mnn import convert_onnx  # noqa: E402
from edgeintent.runtimes import emulation  # noqa: E402

N = 1 << 16
OPS = ("Exp", "Sigmoid", "Tanh")


def graph(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N])
    outs = [helper.make_tensor_value_info(op.lower(), TensorProto.FLOAT, [1, N]) for op in OPS]
    nodes = [helper.make_node(op, ["x"], [op.lower()]) for op in OPS]
    model = helper.make_model(helper.make_graph(nodes, "kernels", [x], outs), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def errors(run) -> dict:
    age = np.linspace(0.0, np.log1p(7200.0), N, dtype=np.float32)[None]
    z = np.linspace(-8.0, 8.0, N, dtype=np.float32)[None]
    a, b = run({"x": age}), run({"x": z})
    exp64, z64 = np.exp(age.astype(np.float64)), z.astype(np.float64)
    rel = np.abs(a["exp"].astype(np.float64) - exp64) / exp64
    old = age >= np.log1p(3600.0)
    return {
        "exp_rel_max": float(rel.max()),
        "exp_rel_mean": float(rel.mean()),
        "seconds_error_max_beyond_1h": float((np.abs(a["exp"].astype(np.float64) - exp64) * old).max()),
        "sigmoid_abs_max": float(np.abs(b["sigmoid"] - 1.0 / (1.0 + np.exp(-z64))).max()),
        "tanh_abs_max": float(np.abs(b["tanh"] - np.tanh(z64)).max()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _results.add_args(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, mnn_path = Path(tmp) / "kernels.onnx", Path(tmp) / "kernels.mnn"
        graph(onnx_path)
        convert_onnx(onnx_path, mnn_path)
        arm = emulation.environment()
        devices = {"host": ([sys.executable], None), emulation.DEVICE: (arm.command(), arm.env())}
        rows = []
        for device, (command, env) in devices.items():
            for kind, path in (("onnxruntime", onnx_path), ("mnn-session", mnn_path)):
                precision = "fp32" if kind == "onnxruntime" else "normal"
                with emulation.WorkerRunner(command, env, kind, path, precision, 1, ["x"], [o.lower() for o in OPS]) as r:
                    rows.append({"device": device, "arch": r.arch, "runtime": r.runtime, **errors(r.run)})
    numpy_exp = np.exp(np.linspace(0.0, np.log1p(7200.0), N, dtype=np.float32))
    ref = np.exp(np.linspace(0.0, np.log1p(7200.0), N, dtype=np.float32).astype(np.float64))
    out = {"rows": rows, "numpy_fp32_exp_rel_max": float((np.abs(numpy_exp - ref) / ref).max())}
    _results.emit("arm_kernels", out, args)
    if not args.json:
        for r in rows:
            print(f"{r['device']:8s} {r['runtime']:28s} exp rel {r['exp_rel_max']:.1e} ({r['seconds_error_max_beyond_1h']:.1e} s "
                  f"past 1 h)  sigmoid {r['sigmoid_abs_max']:.1e}  tanh {r['tanh_abs_max']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
