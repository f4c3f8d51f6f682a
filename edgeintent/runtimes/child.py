"""The measuring process: ``python -m edgeintent.runtimes.child JOB.json RESULT.json``, and
:func:`run_child`, which starts one (bench and the quantization recipes' latency both use it).

One fresh process per variant (in-process measurements after other sessions were up to 2x off).
It pins itself to the job's CPUs, loads numpy and the runtime library, caps its address space at
what is mapped now plus the device's memory budget, resets the peak-RSS counter, and then measures:
load/init, the first inference, the warm-up, and ``runs`` steady inferences one by one
(``perf_counter_ns``). With ``deterministic`` it runs under ``valgrind --tool=callgrind
--instr-atstart=no --dump-before=getsid`` (:data:`CALLGRIND_ARGS`) with a fixed ``PYTHONHASHSEED``: it
asks callgrind to switch instrumentation on before the warm-up, then calls ``getsid`` right before and
right after ``runs`` inferences, where callgrind dumps its counters synchronously, so the count between
the two markers is the same in every process.

A model job names its artifact as ``edgeintent.runtimes.Artifact`` fields (``job["artifact"]``), so the
child opens it exactly as every other runner does (the MNN API and precision the artifact records).
It imports nothing heavy besides the runtime it measures (torch only for the torch reference).
The result is written atomically as JSON; failures are reported in it with the stage they hit.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from edgeintent.errors import BenchError
from edgeintent.runtimes.limits import cap_address_space, child_env, reset_peak_rss, set_affinity, vm_status

CHILD_TIMEOUT_S = 900

MEMORY_WORDS = ("memoryerror", "bad_alloc", "bad allocation", "failed to allocate", "cannot allocate", "out of memory",
                "can't allocate", "std::bad_alloc", "alloc")  # fmt: skip


def _write(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh)
    os.replace(tmp, path)


def _stage(path: str, stage: str) -> None:
    with open(f"{path}.stage", "w") as fh:
        fh.write(stage)


#: what the deterministic child runs under: instrumentation off until the child switches it on, and a
#: counter dump on every entry to ``getsid`` (the child's loop markers; nothing else here calls it)
CALLGRIND_ARGS = ("valgrind", "--tool=callgrind", "--dump-line=no", "--instr-atstart=no", "--dump-before=getsid",
                  "--separate-threads=yes")  # fmt: skip
#: the environment of a deterministic child: str/bytes hashing (and so dict and set layouts) fixed
CALLGRIND_ENV = {"PYTHONHASHSEED": "0"}


def _callgrind_marker() -> None:
    """A loop boundary: callgrind dumps its counters on entering ``getsid`` (``--dump-before``)."""
    os.getsid(0)


def _callgrind_control(*args: str) -> None:
    """``callgrind_control ARGS`` on ourselves, waiting in a blocking waitpid (no busy loop to count)."""
    pid = os.posix_spawnp("callgrind_control", ["callgrind_control", *args, str(os.getpid())], dict(os.environ),
                          file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])  # fmt: skip
    os.waitpid(pid, 0)


def _ms(ns: int) -> float:
    return ns / 1e6


def _profile_ops(job: dict, feeds: dict, runs: int) -> dict:
    """Per-op-type kernel time from an onnxruntime profile of a second session (after the timing)."""
    import onnxruntime as ort

    from edgeintent.runtimes.sessions import ort_session_options

    art = job["artifact"]
    with tempfile.TemporaryDirectory(prefix="edgeintent-prof-") as tmp:
        so = ort_session_options(art["precision"], job["threads"], profile_prefix=os.path.join(tmp, "p"))
        sess = ort.InferenceSession(art["path"], so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        t0 = time.perf_counter_ns()
        for _ in range(runs):
            sess.run(None, {n: feeds[n] for n in names})
        wall_us = (time.perf_counter_ns() - t0) / 1e3
        events = json.load(open(sess.end_profiling()))
    # per node the median over the runs: a preempted run (the host is shared) must not tip the balance
    per_node: dict[tuple[str, str], list[float]] = {}
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            key = (ev["name"], ev.get("args", {}).get("op_name", "?"))
            per_node.setdefault(key, []).append(float(ev.get("dur", 0)))
    by_op: dict[str, float] = {}
    for (_, op), durs in per_node.items():
        by_op[op] = by_op.get(op, 0.0) + sorted(durs)[len(durs) // 2]
    return {"runs": runs, "wall_us_per_run": wall_us / runs, "kernel_us_per_run": by_op,
            "kernels_per_run": len(per_node), "statistic": "median per node over the runs"}  # fmt: skip


def _timed(fn, runs: int, cpu_ms: list[float] | None = None) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn`` (wall clock); with ``cpu_ms``, the process CPU
    time of each call is appended to it (unaffected by other processes taking turns on the CPU)."""
    times = [0] * runs
    cpu = [0] * runs
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    for i in range(runs):
        c0 = cpu_clock()
        t0 = clock()
        fn()
        times[i] = clock() - t0
        cpu[i] = cpu_clock() - c0
    if cpu_ms is not None:
        cpu_ms.extend(c / 1e6 for c in cpu)
    return [t / 1e6 for t in times]


def _end_status(res: dict) -> None:
    """Peak memory, thread count and CPU affinity after the steady runs."""
    st = vm_status()
    res["peak_rss_bytes"] = st["VmHWM"]
    res["os_threads_running"] = st["Threads"]
    res["affinity"] = sorted(os.sched_getaffinity(0))


def measure_model(job: dict, out: str) -> dict:
    import numpy as np

    from edgeintent.runtimes import RUNTIMES, Artifact

    art = Artifact(**{**job["artifact"], "inputs": tuple(job["artifact"]["inputs"]),
                      "outputs": tuple(job["artifact"]["outputs"])})  # fmt: skip
    rt = RUNTIMES.get(art.runtime)
    with np.load(job["feeds"], allow_pickle=False) as z:
        feeds = {k: z[k] for k in z.files}
    rt.preload()
    res: dict = {"runtime": rt.name, "runtime_version": rt.version()}
    before = vm_status()
    res["cap_bytes"] = cap_address_space(job["memory_bytes"])
    res["peak_reset"] = reset_peak_rss()
    base = vm_status()
    res["rss_before_load_bytes"] = base["VmRSS"]
    res["os_threads_before_load"] = base["Threads"]
    res["vm_before_cap_bytes"] = before["VmSize"]

    _stage(out, "load")
    t0 = time.perf_counter_ns()
    runner = rt.open(art, job["threads"])
    res["init_ms"] = _ms(time.perf_counter_ns() - t0)
    res["os_threads_after_load"] = vm_status()["Threads"]

    _stage(out, "first inference")
    t0 = time.perf_counter_ns()
    first = runner.run(feeds)
    res["first_ms"] = _ms(time.perf_counter_ns() - t0)
    res["outputs"] = {k: np.asarray(v, np.float64).reshape(-1).tolist() for k, v in first.items()}
    # what a runtime says about the loaded artifact after its first run (LiteRT applies its delegate then:
    # delegate, operator count); generic and optional
    res["runtime_info"] = runner.info() if callable(getattr(runner, "info", None)) else None

    deterministic = job.get("deterministic")
    if deterministic:
        # valgrind starts with instrumentation off (start-up, load and first inference run uninstrumented,
        # several times faster); callgrind acts on the switch asynchronously, so it is asked for before
        # the warm-up, well ahead of the first marker
        _callgrind_control("-i", "on")
    _stage(out, "warm-up")
    t0 = time.perf_counter_ns()
    for _ in range(job["warmup"]):
        runner.run(feeds)
    res["warmup_ms"] = _ms(time.perf_counter_ns() - t0)
    res["warmup_runs"] = job["warmup"]

    _stage(out, "steady runs")
    runs = job["runs"]
    if deterministic:
        _callgrind_marker()
        for _ in range(runs):
            runner.run(feeds)
        _callgrind_marker()
        res["callgrind_runs"] = runs
    else:
        res["cpu_times_ms"] = []
        res["times_ms"] = _timed(lambda: runner.run(feeds), runs, res["cpu_times_ms"])
    _end_status(res)
    if job.get("profile") and rt.name == "onnxruntime":  # onnxruntime is the runtime with a per-op profiler
        _stage(out, "profile")
        res["op_profile"] = _profile_ops(job, feeds, job.get("profile_runs", 100))
    if job.get("details") and rt.details:  # the runtime's own report on the artifact (Runtime.details)
        _stage(out, "runtime details")
        module, fn = rt.details.split(":")
        res["runtime_details"] = getattr(importlib.import_module(module), fn)(art, feeds, job.get("profile_runs", 100))
    return res


def measure_featurizer(job: dict, out: str) -> dict:
    import numpy as np

    from edgeintent.toolkit.features.request import featurize_request, read_window
    from edgeintent.toolkit.features import FeatureSpec

    spec = FeatureSpec.load(job["spec"])
    tables = read_window(job["window"])
    t_ms = int(job["t_ms"])
    res: dict = {"runtime": "numpy featurizer (edgeintent.toolkit.features)", "runtime_version": np.__version__}
    res["cap_bytes"] = cap_address_space(job["memory_bytes"])
    res["peak_reset"] = reset_peak_rss()
    base = vm_status()
    res["rss_before_load_bytes"] = base["VmRSS"]
    res["os_threads_before_load"] = base["Threads"]
    t0 = time.perf_counter_ns()
    featurize_request(tables, spec, t_ms)
    res["first_ms"] = _ms(time.perf_counter_ns() - t0)
    for _ in range(job["warmup"]):
        featurize_request(tables, spec, t_ms)
    res["cpu_times_ms"] = []
    res["times_ms"] = _timed(lambda: featurize_request(tables, spec, t_ms), job["runs"], res["cpu_times_ms"])
    _end_status(res)
    return res


def _package_root() -> str:
    import edgeintent

    return str(Path(edgeintent.__file__).resolve().parents[1])


def run_child(job: dict, workdir: Path, name: str, threads: int, wrap: list[str] | None = None,
              extra_env: dict[str, str] | None = None) -> tuple[int, dict | None, str]:  # fmt: skip
    """Run one measuring process; returns (returncode, result or None, stage reached)."""
    job_path, out = workdir / f"{name}.job.json", workdir / f"{name}.result.json"
    job_path.write_text(json.dumps(job))
    env = {**child_env(threads), **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join([_package_root(), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = (wrap or []) + [sys.executable, "-m", __name__, str(job_path), str(out)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name}: the measuring process did not finish in {CHILD_TIMEOUT_S} s") from None
    stage_file = Path(f"{out}.stage")
    stage = stage_file.read_text() if stage_file.exists() else "start"
    result = json.loads(out.read_text()) if out.exists() else None
    if result is None and proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()
        result = {"error": tail[-1] if tail else f"exit {proc.returncode}", "stage": stage, "memory": False}
    return proc.returncode, result, stage


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def measure_latency(art, feeds: dict, runs: int, warmup: int = 20) -> dict:
    """p50 and mean (ms) of ``runs`` one-thread inferences of ``art`` on ``feeds`` in a fresh measuring
    process (no memory cap, the CPUs this process may use)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="edgeintent-latency-") as tmp:
        work = Path(tmp)
        np.savez(work / "feeds.npz", **feeds)
        job = {"kind": "model", "artifact": asdict(art), "threads": 1, "cpus": sorted(os.sched_getaffinity(0)),
               "memory_bytes": None, "runs": runs, "warmup": warmup, "feeds": str(work / "feeds.npz")}  # fmt: skip
        code, res, stage = run_child(job, work, "latency", 1)
    if code != 0 or not res or "error" in res:
        raise BenchError(f"latency run of {art.path} failed at the {stage} stage: {(res or {}).get('error', describe_exit(code))}")
    t = np.asarray(res["times_ms"], np.float64)
    return {"p50_ms": float(np.percentile(t, 50)), "mean_ms": float(t.mean())}


def main(argv: list[str]) -> int:
    job_path, out = argv
    with open(job_path) as fh:
        job = json.load(fh)
    set_affinity(tuple(job["cpus"]))
    _stage(out, "start")
    try:
        res = measure_featurizer(job, out) if job["kind"] == "featurizer" else measure_model(job, out)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent as data
        text = f"{type(exc).__name__}: {exc}"
        stage = open(f"{out}.stage").read()
        memory = isinstance(exc, MemoryError) or any(w in text.lower() for w in MEMORY_WORDS)
        _write(out, {"error": text.splitlines()[0][:300] if text else type(exc).__name__, "stage": stage,
                     "memory": memory, "traceback": traceback.format_exc()[-2000:]})  # fmt: skip
        return 3
    _write(out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
