"""``bench --deterministic``: instructions per inference under callgrind, the same in two processes.

Its own file (it keeps both CPUs busy), so the test workers can run it beside test_bench.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeintent.exporters import export_bundle

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("deterministic") / "dipn"
    shutil.copytree(trained("dipn"), out)
    export_bundle(out, "mnn", "fp32")
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None or shutil.which("callgrind_control") is None,
                    reason="valgrind is not installed (apt-get install -y valgrind); --deterministic needs callgrind")
def test_deterministic_instruction_count_is_stable_within_0_01_percent(bundle):
    """Two independent processes benching under callgrind (what ``--deterministic`` runs) count the same
    instructions per inference on the calling thread: the counters are dumped synchronously at the loop's
    markers and hashing is seeded, so MNN's count is the same to a few hundred instructions in 30 runs. They run
    side by side, each pinned to its own CPU when there are two: callgrind counts instructions, not time."""
    import os
    import subprocess
    import sys

    cpus = sorted(os.sched_getaffinity(0))
    pins = [cpus[-1:], cpus[-2:-1]] if len(cpus) >= 2 else [cpus, cpus]
    code = ("import json, sys; from edgeintent.runtime_sim.bench import BenchConfig, run_bench; "
            "cfg = BenchConfig(device='cpu-arm', targets=('mnn',), runs=5, warmup=1, deterministic=True, "
            "deterministic_runs=30, deterministic_warmup=10); "
            "print(json.dumps(run_bench(sys.argv[1], cfg)))")  # fmt: skip

    def start(pin):
        return subprocess.Popen([sys.executable, "-c", code, str(bundle)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, preexec_fn=lambda: os.sched_setaffinity(0, pin))  # fmt: skip

    def finish(p):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        return out

    if len(cpus) >= 2:
        procs = [start(pin) for pin in pins]
        outs = [finish(p) for p in procs]
    else:  # one CPU: one after the other
        outs = [finish(start(pin)) for pin in pins]
    counts = []
    for out in outs:
        row = next(r for r in json.loads(out)["rows"] if r["target"] == "mnn")
        assert row["deterministic"]["runs"] == 30 and row["deterministic"]["threads_counted"] == "calling thread"
        counts.append(row["deterministic"]["instructions_per_inference"])
    assert counts[0] > 1e5
    assert abs(counts[0] - counts[1]) / counts[0] < 1e-4, counts


