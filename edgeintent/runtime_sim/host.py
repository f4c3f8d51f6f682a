"""The host a projection is made on, measured rather than assumed.

:func:`host_record` returns, once per process (cached), what bench records with every projection:

- the CPU as the kernel reports it (``/proc/cpuinfo``: model name, family/model, clock in MHz) and
  its widest SIMD level (AVX-512, AVX2, AVX, SSE4.2 on x86; NEON, NEON+fp16 on ARM);
- a **calibration run**: a fixed small fp32 convolution block (:func:`calibration_graph`: a 3x3 conv
  64→128, a depthwise 3x3, a 1x1 conv back to 64 and a residual add on 56x56, ~0.5 GFLOP) timed in
  onnxruntime at one thread, in a fresh measuring process pinned like bench's (``runtimes/child.py``),
  the **minimum process CPU time** of :data:`CALIBRATION_RUNS` runs after a warm-up (about 0.2 s of
  timed work here). CPU time leaves out other processes' turns on the core; the minimum leaves out
  the runs a neighbour on the same physical core slowed down (on a shared host it varies far less
  between passes than the median does). The median CPU and wall times
  are recorded beside it; wall over CPU, ``busy``, says how loaded the core was;
- the single-core copy bandwidth (read + write of a 64 MB ``np.copyto``, best of 5).

Device profiles store how long the calibration block takes on the phone core
(``DeviceProfile.calib_ms``, fitted on published phone latencies); the projection multiplies host
times by ``device calib_ms / host calib_ms``. A host twice as slow measures model and calibration
block twice as slow, so both hosts project the same phone time. A host slowed by other processes is
not a slower CPU: its CPU time stays, its wall times grow, and the report's ``busy`` says so.
"""

from __future__ import annotations

import functools
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeintent.errors import BenchError

CALIBRATION_RUNS = 20
CALIBRATION_WARMUP = 3
CALIBRATION_SHAPE = (1, 64, 56, 56)
WIDE = 128
CALIBRATION_WORKLOAD = ("onnxruntime fp32, 1 thread: Conv 3x3 64→128 + ReLU, depthwise Conv 3x3 + ReLU, Conv 1x1 128→64, "
                        "residual Add, on 1x64x56x56 (seeded weights); minimum process CPU time of 20 runs after 3 warm-up")  # fmt: skip


@dataclass(frozen=True)
class HostRecord:
    cpu: str  # model name as the kernel reports it
    family_model: str  # x86 "family F model M", ARM "implementer/part", or ""
    mhz: float | None  # clock the kernel reports (a VM reports the nominal clock)
    simd: str  # widest SIMD level: AVX-512, AVX2, AVX, SSE4.2, NEON, NEON+fp16, none
    machine: str  # platform.machine()
    calib_ms: float  # the calibration block's minimum process CPU time here (ms): what projections scale by
    calib_runs: int
    bandwidth_gbs: float  # single-core copy bandwidth (read + write), GB/s
    calib_p50_ms: float | None = None  # its median process CPU time
    calib_wall_ms: float | None = None  # its median wall time: above the CPU time when other processes took turns
    workload: str = CALIBRATION_WORKLOAD

    @property
    def busy(self) -> float | None:
        """Median wall over median CPU time of the calibration block (1.0 on an idle core)."""
        return None if not (self.calib_wall_ms and self.calib_p50_ms) else self.calib_wall_ms / self.calib_p50_ms

    def as_dict(self) -> dict:
        return asdict(self) | {"busy": None if self.busy is None else round(self.busy, 3)}

    @property
    def label(self) -> str:
        clock = f" @ {self.mhz:.0f} MHz" if self.mhz else ""
        return f"{self.cpu}{clock}, {self.simd}; calibration block {self.calib_ms:.2f} ms"


def cpu_identity() -> tuple[str, str, float | None, str]:
    """(model name, family/model, MHz, SIMD level) from /proc/cpuinfo (first CPU)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    if info:
                        break
                    continue
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    name = info.get("model name") or info.get("Hardware") or platform.processor() or platform.machine()
    if "cpu family" in info:
        fam = f"family {info['cpu family']} model {info.get('model', '?')}"
    elif "CPU implementer" in info:
        fam = f"implementer {info['CPU implementer']} part {info.get('CPU part', '?')}"
    else:
        fam = ""
    mhz = float(info["cpu MHz"]) if "cpu MHz" in info else None
    return name, fam, mhz, simd_level(set((info.get("flags") or info.get("Features") or "").split()))


def simd_level(flags: set[str]) -> str:
    for flag, level in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
                        ("asimdhp", "NEON+fp16"), ("asimd", "NEON")):  # fmt: skip
        if flag in flags:
            return level
    return "none"


def calibration_graph():
    """The calibration block as an ONNX ModelProto (opset 17), built without torch."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(20240601)
    n, c, h, w = CALIBRATION_SHAPE

    def init(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name)

    inits = [init("w1", (WIDE, c, 3, 3)), init("b1", (WIDE,)), init("w2", (WIDE, 1, 3, 3)), init("b2", (WIDE,)),
             init("w3", (c, WIDE, 1, 1)), init("b3", (c,))]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=WIDE),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c3", "x"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "edgeintent_host_calibration", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, c, h, w])], inits)  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeintent")


def run_calibration(runs: int = CALIBRATION_RUNS, warmup: int = CALIBRATION_WARMUP, cpus: tuple[int, ...] | None = None) -> dict:
    """Median and minimum process CPU ms and median wall ms of the calibration block, in a fresh
    measuring process pinned to ``cpus``: ``{"cpu_p50_ms", "cpu_min_ms", "p50_ms"}``."""
    from edgeintent.runtimes import Artifact
    from edgeintent.runtimes.child import describe_exit, run_child
    from edgeintent.runtimes.limits import pick_cpus

    work = Path(tempfile.mkdtemp(prefix="edgeintent-hostcal-"))
    try:
        (work / "block.onnx").write_bytes(calibration_graph().SerializeToString())
        x = np.random.default_rng(1).standard_normal(CALIBRATION_SHAPE).astype(np.float32)
        np.savez(work / "feeds.npz", x=x)
        art = Artifact("onnxruntime", str(work / "block.onnx"), "fp32", ("x",), ("y",))
        job = {"kind": "model", "artifact": asdict(art), "threads": 1, "cpus": list(cpus or pick_cpus(1)),
               "memory_bytes": None, "runs": runs, "warmup": warmup, "feeds": str(work / "feeds.npz")}  # fmt: skip
        code, res, stage = run_child(job, work, "calibration", 1)
        if code != 0 or not res or "error" in res:
            raise BenchError(f"host calibration run failed at the {stage} stage: {(res or {}).get('error', describe_exit(code))}")
        cpu = np.asarray(res["cpu_times_ms"])
        return {"cpu_p50_ms": float(np.median(cpu)), "cpu_min_ms": float(cpu.min()), "p50_ms": float(np.median(res["times_ms"]))}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def copy_bandwidth_gbs(mb: int = 64, repeats: int = 5) -> float:
    """Single-thread copy bandwidth, read + write, best of ``repeats`` (GB/s)."""
    src = np.ones(mb * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def measure_host(cpus: tuple[int, ...] | None = None) -> HostRecord:
    name, fam, mhz, simd = cpu_identity()
    cal = run_calibration(cpus=cpus)
    return HostRecord(name, fam, mhz, simd, platform.machine(), round(cal["cpu_min_ms"], 4), CALIBRATION_RUNS,
                      round(copy_bandwidth_gbs(), 2), round(cal["cpu_p50_ms"], 4), round(cal["p50_ms"], 4))  # fmt: skip


@functools.lru_cache(maxsize=None)
def host_record() -> HostRecord:
    """This host, measured once per process."""
    return measure_host()
