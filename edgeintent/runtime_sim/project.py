"""Projection of host latencies to a device profile. Every projected figure carries its label.

Method (devices.md, "How a projection is made"):

    t_device = t_host × ((1 − m) / speed + m / bandwidth)

- ``speed`` and ``bandwidth`` are the profile's single-core speed and memory bandwidth relative to
  this host (devices.py, sourced in devices.md);
- ``m`` is the memory-bound share of one inference: the kernel time of data-movement operators
  (Gather, Concat, Reshape, Transpose, Slice, Cast, …) over the time of all kernels, from an
  onnxruntime profile of the fp32 ONNX artifact on the same request (profiling inflates every
  kernel, so only the proportion is used, never the profiled times). Compute kernels (MatMul, Gemm,
  GRU, elementwise math) and everything outside kernels (the runtime's per-op dispatch, input and
  output copies, the Python call) are CPU work and scale with ``speed``.
- Without an onnxruntime profile ``m`` is 0 and the note says so.

What it ignores is listed in devices.md: thermal throttling, big.LITTLE scheduling and migration,
cache sizes and latencies, SIMD width and fp16 arithmetic on ARM, and runtime differences between
the x86 and ARM builds of the same runtime.
"""

from __future__ import annotations

MEMORY_OPS = frozenset({
    "Gather", "GatherElements", "GatherND", "Concat", "Reshape", "Transpose", "Slice", "Cast", "Unsqueeze", "Squeeze",
    "Expand", "Shape", "Identity", "Split", "Flatten", "Tile", "Pad", "ScatterND", "ScatterElements", "Where",
    "ConstantOfShape", "Range", "Size", "MemcpyFromHost", "MemcpyToHost",
})  # fmt: skip


def memory_share(op_profile: dict | None) -> tuple[float, str]:
    """(m, how it was obtained)."""
    if not op_profile:
        return 0.0, "no onnxruntime profile: every cost scaled by single-core speed"
    kernels = op_profile["kernel_us_per_run"]
    wall = op_profile["wall_us_per_run"]
    mem = sum(v for k, v in kernels.items() if k in MEMORY_OPS)
    total = sum(kernels.values())
    m = min(1.0, mem / total) if total > 0 else 0.0
    return m, (f"onnxruntime profile over {op_profile['runs']} runs: {op_profile['kernels_per_run']:.0f} kernels, "
               f"{total:.0f} µs in kernels of {wall:.0f} µs per run, {mem:.0f} µs in data-movement kernels")


def factor(speed: float, bandwidth: float, m: float) -> float:
    """Multiply a host time by this to project it to the device."""
    return (1.0 - m) / speed + m / bandwidth


def label_projected(device: str) -> str:
    return f"projected on {device}"


def label_measured(device: str, limits: str) -> str:
    return f"measured on host under {device} limits ({limits})"
