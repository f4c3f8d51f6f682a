"""The kit's time for one request: every raw event pushed, then every stream's window, in a compiled loop.

:func:`bench_request` writes the request (its raw events and decision time) as a one-case
``cases.bin``, checks that the kit's window equals the Python featurizer's for it, then times
``kit_conform --bench`` (the host C compiler at ``-O2``) pinned to the given CPUs. Used by
``edgeintent bench`` (the featurizer row beside Python's) and ``benchmarks/kit_featurizer.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeintent.kit import C_DIR, RUNNER
from edgeintent.kit.build import CFLAGS, compile_program, compiler, run
from edgeintent.kit.spec import cases_bytes, read_output, spec_bytes
from edgeintent.toolkit.golden_events import case_arrays


def request_cases(spec, tables: dict, t_ms: int) -> bytes:
    """``cases.bin`` holding one case: the request's raw events (stream → Arrow table) and t."""
    events = {s: [{k: v for k, v in row.items() if k != "user_id"} for row in tables[s].to_pylist()]
              for s in spec.streams if s in tables}  # fmt: skip
    return cases_bytes(case_arrays(spec, [("request", int(t_ms), events)]))


def bench_request(spec, tables: dict, t_ms: int, workdir: Path, runs: int, cpus: list[int] | None = None) -> dict:
    """p50/p90/p99 of the kit featurizing one request, and whether its window is Python's."""
    from edgeintent.toolkit.features.request import featurize_request

    cc = compiler("host")
    workdir = Path(workdir)
    (workdir / "kit-spec.bin").write_bytes(spec_bytes(spec))
    (workdir / "kit-request.bin").write_bytes(request_cases(spec, tables, t_ms))
    exe = compile_program(C_DIR, RUNNER, workdir / "kit_conform")
    args = [str(workdir / "kit-spec.bin"), str(workdir / "kit-request.bin")]
    run(exe, [*args, str(workdir / "kit-out.bin")], cpus=cpus)
    got = read_output((workdir / "kit-out.bin").read_bytes(), "kit bench output")
    want = featurize_request({s: tables[s] for s in got if s in tables}, spec, t_ms)
    same = all(np.array_equal(got[s]["x"][0], want[s]["x"][0]) and int(got[s]["length"][0]) == int(want[s]["length"][0])
               and np.array_equal(got[s]["age"][0], want[s]["age_ms"][0]) for s in want)  # fmt: skip
    proc = run(exe, ["--bench", str(runs), *args, "0"], cpus=cpus)
    res = json.loads(proc.stdout)
    ms = {k.replace("_ns", "_ms"): v / 1e6 for k, v in res.items() if k.endswith("_ns")}
    return {"runtime": f"C99 kit ({Path(cc).name} {' '.join(CFLAGS[-2:])}), compiled loop", "runs": res["runs"],
            **ms, "events": sum(t.num_rows for t in tables.values()), "matches_python": bool(same)}  # fmt: skip
