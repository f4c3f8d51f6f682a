"""The ExecuTorch session: a ``.pte`` program in ExecuTorch's Python runtime (portable kernels and
the XNNPACK delegate, as linked into the ``executorch`` wheel).

An ExecuTorch program here has static shapes (``to_edge`` specialises the batch, and the exporter
fixes every stream at ``max_len``): batch 1. The session takes the signature's usual feeds through
:class:`edgeintent.runtimes.fixed_shapes.FixedShapes`: each row right-padded to the static shapes (the
``*_len`` inputs mask the padding), the rows run one by one, a window longer than the static shape
refused with one line (``ExportError``). :func:`details` is bench's view of a program: its planned
memory and an ETDump per-op profile.

ExecuTorch's Python runtime takes and returns torch tensors, so this session imports torch (through
``executorch.runtime``) when it opens a program; nothing else in the runtime layer does.
"""

from __future__ import annotations

import contextlib
import io
import re
from importlib import metadata
from pathlib import Path

import numpy as np

from edgeintent.errors import ExportError
from edgeintent.runtimes.fixed_shapes import FixedShapes


#: ExecuTorch's ScalarType codes (c10 order) of the input types these programs take
SCALAR_TYPES = {1: np.int8, 3: np.int32, 4: np.int64, 6: np.float32, 7: np.float64, 11: np.bool_}


class ExecuTorchSession:
    def __init__(self, path: str, inputs, outputs, etdump: bool = False) -> None:
        import torch
        from executorch.runtime import Runtime, Verification

        self._torch = torch
        with _quiet():
            self.program = Runtime.get().load_program(Path(path), verification=Verification.Minimal, enable_etdump=etdump)
            self.method = self.program.load_method("forward")
        self._first = True
        meta = self.method.metadata
        self.inputs, self.outputs = list(inputs), list(outputs)
        if meta.num_inputs() != len(self.inputs) or meta.num_outputs() != len(self.outputs):
            raise ExportError(f"{path}: the program has {meta.num_inputs()} inputs and {meta.num_outputs()} outputs, "
                             f"its metadata {len(self.inputs)} and {len(self.outputs)}")  # fmt: skip
        self.shapes = {n: tuple(meta.input_tensor_meta(i).sizes()) for i, n in enumerate(self.inputs)}
        self.dtypes = {n: SCALAR_TYPES[int(meta.input_tensor_meta(i).dtype())] for i, n in enumerate(self.inputs)
                       if int(meta.input_tensor_meta(i).dtype()) in SCALAR_TYPES}  # fmt: skip
        self.runtime = f"ExecuTorch {metadata.version('executorch')}"
        self._rows = FixedShapes("executorch", self.inputs, self.shapes, self.dtypes, self.outputs)

    def _one(self, row: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        with _quiet() if self._first else contextlib.nullcontext():
            res = self.method.execute([torch.from_numpy(row[n]) for n in self.inputs])
        self._first = False
        return [r.numpy() for r in res]

    def run(self, feeds: dict) -> dict:
        return self._rows.run(feeds, self._one)


def planned_memory(path) -> dict:
    """The program's memory plan: ``non_const_buffer_sizes`` of its execution plan (buffer 0 is reserved)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(Path(path).read_bytes())
    plan = getattr(pte, "program", pte).execution_plan[0]
    sizes = [int(n) for n in plan.non_const_buffer_sizes]
    return {"planned_memory_bytes": sum(sizes), "planned_buffers": sizes}


def op_profile(path, inputs, outputs, feeds: dict, runs: int, top: int = 8) -> dict:
    """ETDump over ``runs`` runs of one row, read by ``executorch.devtools.Inspector``: per operator
    name (kernels and XNNPACK delegate calls; the ``OPERATOR_CALL`` wrappers left out) the sum over its
    events of each event's median time, the ``top`` of them, and their total per run."""
    import tempfile

    from executorch.devtools import Inspector

    session = ExecuTorchSession(path, inputs, outputs, etdump=True)
    one = {k: np.asarray(v)[:1] for k, v in feeds.items()}
    for _ in range(runs):
        session.run(one)
    with tempfile.TemporaryDirectory(prefix="edgeintent-etdump-") as tmp, _quiet():
        etdump = Path(tmp) / "run.etdp"
        session.program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
        inspector = Inspector(etdump_path=str(etdump))
    by_op: dict[str, float] = {}
    execute = delegate = 0.0
    events = 0
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for ev in block.events:
            if ev.perf_data is None or ev.name == "OPERATOR_CALL":
                continue
            ms = float(ev.perf_data.p50)
            if ev.name == "Method::execute":  # the whole run
                execute += ms
            elif ev.name == "DELEGATE_CALL":  # wraps the delegate's own events, which are counted below
                delegate += ms
            else:
                name = re.sub(r" #\d+$", "", ev.name.removeprefix("native_call_"))  # XNNPACK numbers its nodes
                by_op[name] = by_op.get(name, 0.0) + ms
                events += 1
    ranked = sorted(by_op.items(), key=lambda kv: -kv[1])
    return {"runs": runs, "events_per_run": events, "execute_ms": execute, "delegate_ms": delegate,
            "unattributed_ms": max(execute - sum(by_op.values()), 0.0),  # dispatch and control flow between events
            "top_ops": [{"op": k, "ms": v, "share": v / execute if execute else 0.0} for k, v in ranked[:top]],
            "statistic": "ETDump via executorch.devtools.Inspector: median per event over the runs, summed per "
                         "operator (XNNPACK's own nodes inside delegate calls; shares of Method::execute)"}  # fmt: skip


def details(art, feeds: dict, runs: int) -> dict:
    """Bench's runtime details for a ``.pte``: the planned memory and the ETDump per-op profile."""
    return {**planned_memory(art.path), "op_profile": op_profile(art.path, art.inputs, art.outputs, feeds, runs)}


@contextlib.contextmanager
def _quiet():
    """Drop what ExecuTorch logs while it loads a program and runs it the first time (XNNPACK's
    cpuinfo lines): Python-level stdout and stderr, and fd 1, so ``--json`` output stays JSON."""
    from edgeintent.runtimes.sessions import quiet_fd

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), quiet_fd():
        yield
