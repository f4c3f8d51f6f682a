"""The ExecuTorch session: a ``.pte`` program in ExecuTorch's Python runtime (portable kernels and
the XNNPACK delegate, as linked into the ``executorch`` wheel).

An ExecuTorch program here has static shapes (``torch.export`` unrolls the recurrences over the
example's length and ``to_edge`` specialises the batch): batch 1 and every stream at ``max_len``.
The session takes the signature's usual feeds (any batch, streams up to their static length): it
right-pads each row to the static shapes (the ``*_len`` inputs mask the padding; a row's padding never
changes its outputs) and runs the rows one by one. A window longer than the static shape is refused
with one line (``ExportError``).

ExecuTorch's Python runtime takes and returns torch tensors, so this session imports torch (through
``executorch.runtime``) when it opens a program; nothing else in the runtime layer does.
"""

from __future__ import annotations

import contextlib
import io
from importlib import metadata
from pathlib import Path

import numpy as np

from edgeintent.errors import ExportError


class ExecuTorchSession:
    def __init__(self, path: str, inputs, outputs) -> None:
        import torch
        from executorch.runtime import Runtime, Verification

        self._torch = torch
        with _quiet():
            self.program = Runtime.get().load_program(Path(path), verification=Verification.Minimal)
            self.method = self.program.load_method("forward")
        self._first = True
        meta = self.method.metadata
        self.inputs, self.outputs = list(inputs), list(outputs)
        if meta.num_inputs() != len(self.inputs) or meta.num_outputs() != len(self.outputs):
            raise ExportError(f"{path}: the program has {meta.num_inputs()} inputs and {meta.num_outputs()} outputs, "
                             f"its metadata {len(self.inputs)} and {len(self.outputs)}")  # fmt: skip
        self.shapes = {n: tuple(meta.input_tensor_meta(i).sizes()) for i, n in enumerate(self.inputs)}
        self.runtime = f"ExecuTorch {metadata.version('executorch')}"

    def _check(self, name: str, a: np.ndarray) -> None:
        shape = self.shapes[name]
        if a.ndim != len(shape) or any(g > s for g, s in zip(a.shape[1:], shape[1:], strict=True)):
            raise ExportError(f"executorch artifact takes {name} of shape at most {shape} (static shapes; "
                             f"export with a larger max_len for longer windows), got {tuple(a.shape)}")  # fmt: skip

    def _row(self, name: str, a: np.ndarray) -> np.ndarray:
        """One row (batch 1) of input ``name`` right-padded with zeros to the static shape."""
        out = np.zeros(self.shapes[name], a.dtype)
        out[(slice(None),) + tuple(slice(0, g) for g in a.shape[1:])] = a
        return out

    def run(self, feeds: dict) -> dict:
        torch = self._torch
        arrays = {}
        for n in self.inputs:
            if n not in feeds:
                raise ExportError(f"executorch artifact needs input {n!r}")
            a = np.asarray(feeds[n])
            arrays[n] = np.ascontiguousarray(a, np.int64 if np.issubdtype(a.dtype, np.integer) else np.float32)
        batch = next(iter(arrays.values())).shape[0]
        for n, a in arrays.items():
            self._check(n, a)
        rows: list[list[np.ndarray]] = []
        for b in range(batch):
            with _quiet() if self._first else contextlib.nullcontext():
                res = self.method.execute([torch.from_numpy(self._row(n, a[b : b + 1])) for n, a in arrays.items()])
            self._first = False
            rows.append([np.asarray(r.numpy(), np.float32).reshape(-1) for r in res])
        return {o: np.concatenate([r[k] for r in rows]) if rows else np.empty(0, np.float32)
                for k, o in enumerate(self.outputs)}  # fmt: skip


@contextlib.contextmanager
def _quiet():
    """Drop what ExecuTorch logs while it loads a program and runs it the first time (XNNPACK's
    cpuinfo lines): Python-level stdout and stderr, and fd 1, so ``--json`` output stays JSON."""
    from edgeintent.runtimes.sessions import quiet_fd1

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), quiet_fd1():
        yield
