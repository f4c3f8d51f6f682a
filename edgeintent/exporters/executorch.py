"""ExecuTorch target: ``torch.export`` → ``to_edge_transform_and_lower`` → a ``.pte`` program, run by
ExecuTorch's Python runtime (``edgeintent.runtimes.executorch_session``).

Static shapes: batch 1 and every stream at the bundle's ``max_len``. ``to_edge`` specialises a
dynamic batch to the example's size ("Attempted to resize a static tensor" at run time), so the
example is one row at full width. The session pads shorter windows (the lengths inputs mask them),
runs batches row by row and refuses longer windows with one line.

Options (``--set KEY=VALUE``):

- ``backend``: ``xnnpack`` (default: the XNNPACK delegate takes what it supports, portable kernels the
  rest) or ``portable`` (portable kernels only);
- ``rnn``: ``unrolled`` (default: ``to_edge`` decomposes each recurrence into one cell per step up to
  ``max_len``, ~26,000 nodes for dipn at 50/20/20, about 110 CPU-s to lower; the fastest program) or
  ``scan`` (every ``nn.GRU``/``nn.LSTM`` becomes a ``torch.scan`` over time,
  :mod:`edgeintent.exporters.recurrence`: each cell once in the program, 2.5–6x cheaper to export, 3–5x
  slower to run; ``benchmarks/executorch_variants.py`` measures both).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from edgeintent.errors import ConfigError, ExportError
from edgeintent.exporters import Target, register_target

BACKENDS = ("xnnpack", "portable")
RNN_MODES = ("scan", "unrolled")


def check_options(backend: str, rnn: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"executorch backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if rnn not in RNN_MODES:
        raise ConfigError(f"executorch rnn must be one of {', '.join(RNN_MODES)}, got {rnn!r}")


def export_module(model, rnn: str = "unrolled"):
    """The torch module ExecuTorch exports: the signature wrapper, recurrences as ``scan`` or as they are."""
    from edgeintent.exporters.recurrence import scanned
    from edgeintent.toolkit.models.exportable import ExportModule

    return ExportModule(scanned(model) if rnn == "scan" else model).eval()


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def lower(exported, backend: str):
    """An ``ExportedProgram`` → the ExecuTorch program manager (``.buffer`` is the ``.pte``)."""
    from executorch.exir import to_edge_transform_and_lower

    partitioner = []
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioner = [XnnpackPartitioner()]
    return to_edge_transform_and_lower(exported, partitioner=partitioner).to_executorch()


def export_program(model, example: tuple, backend: str = "xnnpack", rnn: str = "unrolled"):
    """The lowered ExecuTorch program (``ExecutorchProgramManager``) of ``model`` at ``example``'s shapes."""
    import torch

    check_options(backend, rnn)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            ep = torch.export.export(export_module(model, rnn), example, strict=False)
            return lower(ep, backend)
        except Exception as exc:  # noqa: BLE001 - torch.export / exir raise many kinds
            raise ExportError(f"executorch export failed: {_one_line(exc)}") from None


def program_facts(prog) -> dict:
    """What the serialised program says about itself: planned memory and delegate calls."""
    plan = prog.executorch_program.execution_plan[0]
    return {"planned_memory_bytes": int(sum(plan.non_const_buffer_sizes)),
            "delegate_calls": sum(1 for c in plan.chains[0].instructions if type(c.instr_args).__name__ == "DelegateCall"),
            "instructions": len(plan.chains[0].instructions)}  # fmt: skip


@register_target("executorch")
class ExecuTorchTarget(Target):
    extension = ".pte"
    precisions = ("fp32",)
    dynamic_batch = False
    dynamic_length = False
    runtime = "ExecuTorch Python runtime (XNNPACK delegate + portable kernels)"
    runtimes = ("executorch",)
    notes = ("static shapes (batch 1, streams at max_len): the session pads shorter windows, "
             "runs batches row by row, refuses longer ones; --set rnn=scan exports cheaper, runs slower")  # fmt: skip
    requires = ("executorch",)
    options = ("backend", "rnn")

    def export(self, model, spec, samples, out: Path, precision: str, backend: str = "xnnpack", rnn: str = "unrolled") -> dict:
        check_options(backend, rnn)
        other = [f"{i.name} ({i.dims[0]})" for i in model.signature().inputs if i.dims and i.dims[0] != "batch"]
        if other:  # the session splits feeds into rows; tables indexed across rows cannot be split
            raise ExportError(f"executorch programs run one row at a time, but inputs {', '.join(other)} are not "
                              "indexed by the batch row; export this model to a target with dynamic shapes")  # fmt: skip
        from edgeintent.toolkit.models.exportable import static_example

        example = static_example(model, spec, samples)
        prog = export_program(model, example, backend, rnn)
        out.write_bytes(prog.buffer)
        return {"backend": backend, "rnn": rnn,
                "static_shapes": {n: list(t.shape) for n, t in zip(model.input_names(), example, strict=True)},
                **program_facts(prog)}  # fmt: skip
