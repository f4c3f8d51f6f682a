"""Running an artifact with static input shapes (batch 1, every stream at ``max_len``) on the signature's
usual feeds: any batch, any stream length up to the static one.

A fixed-shape artifact (LiteRT's ``.tflite``, ExecuTorch's ``.pte``) is exported
at one row with every stream at the bundle's ``max_len``: the converters unroll the recurrences over
the example's length and specialise its batch. :class:`FixedShapes` right-pads each row of a feed to
the static shape with zeros (the ``*_len`` inputs mask the padding; a row's padding never changes its
outputs, which parity's ``garbage_pad`` variant checks), runs the rows one by one and concatenates
the outputs. A window longer than the static shape, or an input of another rank, is refused with one
line (``ExportError``) before anything runs.

Generic over runtimes: a session hands it its static shapes, the dtypes its artifact takes (LiteRT
takes int32 where the signature says int64; an input without one keeps its feed's dtype) and a
``run_one(arrays) -> [outputs]`` for one row.

Like ``sessions.py``, this file also runs without the edgeintent package: the aarch64 worker
(``worker.py``) loads it as a top-level module on the emulated python, where only numpy and the runtimes
are installed. There ``ExportError`` is a stand-in of the same name (the worker reports an error as its
class name and message, and the host raises it as a one-line ``EmulationError``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

if __package__:  # imported as edgeintent.runtimes.fixed_shapes
    from edgeintent.errors import ExportError, ShapeRefused
else:  # loaded as a top-level module by the aarch64 worker: no edgeintent there

    class ExportError(ValueError):
        """Stands in for ``edgeintent.errors.ExportError`` in the worker."""

    class ShapeRefused(ExportError):
        """Stands in for ``edgeintent.errors.ShapeRefused``; the host raises that again from its name."""


class FixedShapes:
    def __init__(self, label: str, inputs: list[str], shapes: dict[str, tuple[int, ...]], dtypes: dict[str, type],
                 outputs: list[str]) -> None:  # fmt: skip
        self.label = label
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.shapes = {n: tuple(int(d) for d in shapes[n]) for n in self.inputs}
        self.dtypes = dict(dtypes)
        bad = [n for n in self.inputs if not self.shapes[n] or self.shapes[n][0] != 1]
        if bad:
            raise ExportError(f"{label} artifact: input {bad[0]!r} has shape {self.shapes[bad[0]]}, not batch 1")

    def arrays(self, feeds: dict) -> dict[str, np.ndarray]:
        """The feeds cast to the artifact's dtypes and checked against the static shapes."""
        arrays = {}
        for n in self.inputs:
            if n not in feeds:
                raise ExportError(f"{self.label} artifact needs input {n!r}")
            a = np.asarray(feeds[n])
            shape = self.shapes[n]
            if a.ndim != len(shape) or any(g > s for g, s in zip(a.shape[1:], shape[1:], strict=True)):
                raise ShapeRefused(f"{self.label} artifact takes {n} of shape at most (batch, {', '.join(map(str, shape[1:]))}) "
                                  f"(static shapes: export with a larger max_len for longer windows), got {tuple(a.shape)}")  # fmt: skip
            arrays[n] = a
        batches = {a.shape[0] for a in arrays.values()}
        if len(batches) > 1:
            raise ExportError(f"{self.label} artifact: the inputs disagree on the batch size ({sorted(batches)})")
        return arrays

    def row(self, name: str, a: np.ndarray, b: int) -> np.ndarray:
        """Row ``b`` of input ``name`` right-padded with zeros to the static shape, in the artifact's dtype."""
        out = np.zeros(self.shapes[name], self.dtypes.get(name, a.dtype))
        out[(slice(0, 1),) + tuple(slice(0, g) for g in a.shape[1:])] = a[b : b + 1]
        return out

    def run(self, feeds: dict, run_one: Callable[[dict[str, np.ndarray]], list[np.ndarray]]) -> dict[str, np.ndarray]:
        arrays = self.arrays(feeds)
        batch = next(iter(arrays.values())).shape[0] if arrays else 0
        rows = [[np.asarray(r, np.float32) for r in run_one({n: self.row(n, a, b) for n, a in arrays.items()})]
                for b in range(batch)]  # fmt: skip
        out = {}
        for k, o in enumerate(self.outputs):
            parts = [r[k] for r in rows]
            # a (1,) score per row → (B,); a (1, D) vector per row → (B, D)
            out[o] = np.concatenate([p.reshape(1, -1) if p.ndim > 1 else p.reshape(-1) for p in parts]) if parts else np.empty(0, np.float32)
        return out
