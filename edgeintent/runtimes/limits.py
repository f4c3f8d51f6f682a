"""Phone-like limits for the measuring process, and what the process can observe about itself.

Applied inside the child process that measures one variant (``child.py``), in this order:

1. CPU affinity (``os.sched_setaffinity``) to ``threads`` CPUs of this host;
2. thread count: ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the child's
   environment (set by the parent before the interpreter starts) and the runtime's own intra-op
   setting (onnxruntime ``intra_op_num_threads``, MNN ``numThread``, ``torch.set_num_threads``);
3. memory: ``RLIMIT_AS`` = the address space already mapped after the interpreter, numpy and the
   runtime library are loaded, **plus the profile's budget**. The budget is what the model may add
   to the process (an app's code is loaded before its model, too). An allocation beyond it fails in
   the runtime (onnxruntime and torch raise; MNN may crash), which the parent reports as
   "exceeds the device's memory budget".

No CPU quota is used: cgroup v2 has no cpu controller here, and quota stalls (CFS throttling in
100 ms periods) would show up as p99 spikes in sub-millisecond latencies. The profile's slower core
is modelled by the projection instead (``project.py``).

Peak RSS is ``VmHWM`` from ``/proc/self/status``, reset by writing ``5`` to ``/proc/self/clear_refs``
just before the model is loaded (tracemalloc cannot see native allocations).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Limits:
    threads: int
    cpus: tuple[int, ...]
    memory_bytes: int | None  # budget the model may add; None = no cap


def pick_cpus(threads: int) -> tuple[int, ...]:
    """The last ``threads`` CPUs this process may use (CPU 0 takes most interrupts)."""
    avail = sorted(os.sched_getaffinity(0))
    return tuple(avail[-threads:]) if threads <= len(avail) else tuple(avail)


def child_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update({k: str(threads) for k in THREAD_ENV})
    env["PYTHONHASHSEED"] = "0"
    return env


def vm_status() -> dict[str, int]:
    """Vm* sizes (bytes) and Threads from /proc/self/status."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, val = line.partition(":")
            if key.startswith("Vm"):
                out[key] = int(val.split()[0]) * 1024
            elif key == "Threads":
                out[key] = int(val)
    return out


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def set_affinity(cpus: tuple[int, ...]) -> tuple[int, ...]:
    os.sched_setaffinity(0, set(cpus))
    return tuple(sorted(os.sched_getaffinity(0)))


def cap_address_space(extra_bytes: int | None) -> int | None:
    """RLIMIT_AS = what is mapped now + ``extra_bytes``; returns the cap (bytes) or None."""
    if extra_bytes is None:
        return None
    cap = vm_status()["VmSize"] + int(extra_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return cap
