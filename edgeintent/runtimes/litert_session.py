"""The LiteRT session: a ``.tflite`` model in ai-edge-litert's interpreter (Google's LiteRT, formerly
TensorFlow Lite), with its default XNNPACK delegate or without any delegate.

The model's ``serving_default`` signature takes ``args_0 … args_{n-1}`` (the edgeintent signature's
inputs, in order) and returns ``output_0 …`` (its outputs, in order). Its shapes are static (batch 1,
every stream at ``max_len``) and its integer inputs are int32 (litert-torch downcasts int64 model
I/O): :class:`~edgeintent.runtimes.fixed_shapes.FixedShapes` pads the rows of a feed, casts them and
runs them one by one, and refuses a longer window with one line.

``info()`` says what bench reports next to the timings: the delegate applied and the model's operator
count (the TFLite graph's operators, and the DELEGATE nodes that took over parts of it).

This file imports only the standard library, numpy, its siblings ``fixed_shapes.py`` and ``sessions.py``
and, when a session opens, ``ai_edge_litert``: the aarch64 worker (``worker.py``) loads it as a top-level
module on the emulated python (cpu-arm), and the host opens ``.tflite`` files with the same classes.
:data:`KINDS` opens a session from the worker's load request, on either side.
"""

from __future__ import annotations

import contextlib
import io
from importlib import metadata

import numpy as np

if __package__:  # imported as edgeintent.runtimes.litert_session
    from edgeintent.errors import ExportError
    from edgeintent.runtimes.fixed_shapes import FixedShapes
    from edgeintent.runtimes.sessions import quiet_fd
else:  # loaded as a top-level module by the aarch64 worker: its siblings, no edgeintent
    from fixed_shapes import ExportError, FixedShapes
    from sessions import quiet_fd

DELEGATES = ("xnnpack", "none")


def _positional(names, prefix: str) -> list[str]:
    try:
        return sorted(names, key=lambda k: int(k.removeprefix(prefix)))
    except ValueError:
        raise ExportError(f"LiteRT model signature has names {sorted(names)}, not {prefix}0, {prefix}1, …") from None


class LiteRTSession:
    def __init__(self, path: str, threads: int, inputs, outputs, delegate: str = "xnnpack") -> None:
        from ai_edge_litert import interpreter as tfl

        if delegate not in DELEGATES:
            raise ExportError(f"LiteRT delegate must be one of {', '.join(DELEGATES)}, got {delegate!r}")
        resolver = (tfl.OpResolverType.AUTO if delegate == "xnnpack"
                    else tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # fmt: skip
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                self.interpreter = tfl.Interpreter(model_path=str(path), num_threads=threads,
                                                   experimental_op_resolver_type=resolver)  # fmt: skip
                self.runner = self.interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"LiteRT cannot load {path}: {first}") from None
        self.inputs, self.outputs = list(inputs), list(outputs)
        ins, outs = self.runner.get_input_details(), self.runner.get_output_details()
        if len(ins) != len(self.inputs) or len(outs) != len(self.outputs):
            raise ExportError(f"{path}: the model has {len(ins)} inputs and {len(outs)} outputs, "
                              f"its metadata {len(self.inputs)} and {len(self.outputs)}")  # fmt: skip
        self._in_keys = _positional(ins, "args_")
        self._out_keys = _positional(outs, "output_")
        shapes = {n: tuple(ins[k]["shape"]) for n, k in zip(self.inputs, self._in_keys, strict=True)}
        dtypes = {n: ins[k]["dtype"] for n, k in zip(self.inputs, self._in_keys, strict=True)}
        self.fixed = FixedShapes("litert", self.inputs, shapes, dtypes, self.outputs)
        self.delegate = delegate
        self._first = True
        self.runtime = f"LiteRT {metadata.version('ai-edge-litert')}"

    def _one(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self.runner(**{k: arrays[n] for n, k in zip(self.inputs, self._in_keys, strict=True)})
        return [res[k] for k in self._out_keys]

    def run(self, feeds: dict) -> dict:
        if self._first:  # the interpreter applies its delegate now and logs it on fd 2 ("INFO: Created …")
            with quiet_fd(2):
                out = self.fixed.run(feeds, self._one)
            self._first = False
            return out
        return self.fixed.run(feeds, self._one)

    def info(self) -> dict:
        """The delegate and the operator counts (what bench puts beside the timings). The interpreter
        applies its default delegate when it first allocates tensors: ask after the first run."""
        # every node of the graph, then one DELEGATE node per subgraph a delegate took over
        nodes = self.interpreter._get_ops_details()
        delegated = sum(1 for n in nodes if n["op_name"] == "DELEGATE")
        return {"delegate": "XNNPACK" if delegated else "none", "ops": len(nodes) - delegated, "delegate_nodes": delegated,
                "static_shapes": {n: list(s) for n, s in self.fixed.shapes.items()}}  # fmt: skip


def _kind(delegate: str):
    def open_(path: str, precision: str, threads: int, inputs, outputs) -> LiteRTSession:
        return LiteRTSession(path, threads, inputs, outputs, delegate)  # a .tflite has one precision: its own

    return open_


#: runtime name → ``(path, precision, threads, inputs, outputs) -> session``, as ``sessions.KINDS``
KINDS = {"litert": _kind("xnnpack"), "litert-builtin": _kind("none")}
