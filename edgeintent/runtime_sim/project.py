"""Projection of host latencies to a device profile. Every projected figure carries its label.

Method (devices.md, "How a projection is made"):

    t_device = t_host × ((1 − m) / speed + m / min(bandwidth, speed))

- ``speed`` is the profile's single-core speed relative to the host the projection is made on:
  ``host calib_ms / device calib_ms`` (``host.py`` measures the host's calibration block; the device's
  is fitted on published fp32 one-thread phone latencies, ``calibration/``). ``bandwidth`` is the
  device's single-core bandwidth over the host's measured copy bandwidth, and is used only up to
  ``speed``: a data-movement kernel is never projected to run relatively faster on the phone than
  the calibrated compute, so a larger ``m`` never makes a slower phone look faster (devices.md says
  why the cap, not a fitted memory penalty);
- ``m`` is the memory-bound share of one inference: the kernel time of data-movement operators
  (Gather, Concat, Reshape, Transpose, Slice, Cast, …) over the time of all kernels, from an
  onnxruntime profile of the fp32 ONNX artifact on the same request (profiling inflates every
  kernel, so only the proportion is used, never the profiled times). Compute kernels (MatMul, Gemm,
  GRU, elementwise math) and everything outside kernels (the runtime's per-op dispatch, input and
  output copies, the Python call) are CPU work and scale with ``speed``.
- Without an onnxruntime profile ``m`` is 0 and the note says so.

Every projection says its precision (``fp32``: the calibration rows' arithmetic) and its uncertainty
(the profile's projected / published range on the held-out check rows, turned into a range of device
times). What it ignores is listed in devices.md: thermal throttling, big.LITTLE scheduling and
migration, cache sizes and latencies, fp16 arithmetic on ARM, and runtime differences between the
x86 and ARM builds of the same runtime.
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
    """Multiply a host time by this to project it to the device (never below ``1 / speed``; grows with ``m``)."""
    return (1.0 - m) / speed + m / min(bandwidth, speed)


PROJECTED_FROM = ("p50: the steady runs' minimum process CPU time × factor, as the calibration fit (a quiet phone's "
                  "typical time; on a shared host the minimum is the least disturbed run); p90/p99/mean: the host's "
                  "CPU-time statistics × factor (host noise, not the phone's); first_ms: wall clock × factor")  # fmt: skip
PRECISION_NOTE = ("fp32 arithmetic: calibrated on fp32 one-thread rows; this host computes fp16 artifacts in fp32, "
                  "so fp16 rows are projected as fp32 too (an ARMv8.2 core computing fp16 natively can be ~1.9x "
                  "faster: Paddle-Lite's A76 fp16 vs fp32 tables), not a projection of fp16 arithmetic")  # fmt: skip


def time_range(t_ms: float, check_range: tuple[float, float] | None) -> list[float] | None:
    """Device times consistent with ``t_ms`` projected, given projected / published in ``check_range``."""
    if not check_range:
        return None
    lo, hi = check_range
    return [t_ms / hi, t_ms / lo]


def projection(dev, host, m: float, how: str) -> dict:
    """The projection of host times measured on ``host`` (a ``HostRecord``) to ``dev`` (a ``DeviceProfile``)."""
    speed, bandwidth = dev.speed_vs(host), dev.bandwidth_vs(host)
    return {
        "label": label_projected(dev.name),
        "method": "t_device = t_host × ((1 − m) / speed + m / min(bandwidth, speed)); speed = host calib_ms / device calib_ms",
        "speed": speed, "bandwidth": bandwidth, "bandwidth_used": min(bandwidth, speed),
        "memory_share": m, "memory_share_from": how, "factor": factor(speed, bandwidth, m),
        "featurizer_factor": 1.0 / speed,
        "device_calib_ms": dev.calib_ms, "host_calib_ms": host.calib_ms, "calibrated": dev.calibrated,
        "precision": dev.precision, "precision_note": PRECISION_NOTE,
        "uncertainty": {"check_ratio_range": None if dev.check_range is None else list(dev.check_range),
                        "meaning": "projected / published on the profile's held-out check rows (devices.md); a device "
                                   "time consistent with a projection t lies in [t / max, t / min]"
                        if dev.check_range else "not calibrated on published rows: no measured uncertainty"},
        "host": host.as_dict(),
        "ignores": "thermal throttling, big.LITTLE scheduling, cache sizes, fp16 arithmetic on ARM, "
                   "x86 vs ARM builds of the runtimes (devices.md)",
    }  # fmt: skip


def label_projected(device: str) -> str:
    return f"projected on {device}"


def label_measured(device: str, limits: str) -> str:
    return f"measured on host under {device} limits ({limits})"
