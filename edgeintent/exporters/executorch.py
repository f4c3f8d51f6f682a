"""ExecuTorch target: ``torch.export`` → ``to_edge_transform_and_lower`` → a ``.pte`` program, run by
ExecuTorch's Python runtime (``edgeintent.runtimes.executorch_session``).

Static shapes: batch 1 and every stream at the bundle's ``max_len``. ``torch.export`` unrolls
``nn.GRU``/``nn.LSTM`` over the example's length (a dynamic T fails: "Constraints violated") and
``to_edge`` specialises a dynamic batch to the example's size ("Attempted to resize a static tensor"
at run time), so the example is one row at full width. The session pads shorter windows (the
lengths inputs mask them), runs batches row by row and refuses longer windows with one line.

Backends (``--set backend=``): ``xnnpack`` (default: the XNNPACK delegate takes what it supports,
portable kernels the rest) or ``portable`` (portable kernels only).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgeintent.errors import ConfigError, ExportError
from edgeintent.exporters import Target, register_target

BACKENDS = ("xnnpack", "portable")


def static_example(model, spec, samples):
    """One golden row with every stream at ``max_len``: the shapes the program is exported with."""
    import torch

    from edgeintent.toolkit.models.exportable import feeds

    widths = {s: int(spec.max_len[s]) for s in model.streams}
    f = feeds(model, samples, np.arange(1), widths=widths)
    return tuple(torch.from_numpy(np.ascontiguousarray(f[n])) for n in model.input_names())


def export_program(model, example: tuple, backend: str = "xnnpack"):
    """The lowered ExecuTorch program (``ExecutorchProgramManager``) of ``model`` at ``example``'s shapes."""
    import torch
    from executorch.exir import to_edge_transform_and_lower

    from edgeintent.toolkit.models.exportable import ExportModule

    if backend not in BACKENDS:
        raise ConfigError(f"executorch backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    partitioner = []
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioner = [XnnpackPartitioner()]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            ep = torch.export.export(ExportModule(model).eval(), example, strict=False)
            return to_edge_transform_and_lower(ep, partitioner=partitioner).to_executorch()
        except Exception as exc:  # noqa: BLE001 - torch.export / exir raise many kinds
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"executorch export failed: {type(exc).__name__}: {first}") from None


@register_target("executorch")
class ExecuTorchTarget(Target):
    extension = ".pte"
    precisions = ("fp32",)
    dynamic_batch = False
    dynamic_length = False
    runtime = "ExecuTorch Python runtime (XNNPACK delegate + portable kernels)"
    runtimes = ("executorch",)
    notes = ("static shapes (batch 1, streams at max_len): the session pads shorter windows, "
             "runs batches row by row, refuses longer ones")  # fmt: skip
    requires = ("executorch",)
    options = ("backend",)

    def export(self, model, spec, samples, out: Path, precision: str, backend: str = "xnnpack") -> dict:
        example = static_example(model, spec, samples)
        prog = export_program(model, example, backend)
        out.write_bytes(prog.buffer)
        plan = prog.executorch_program.execution_plan[0]
        return {"backend": backend,
                "static_shapes": {n: list(t.shape) for n, t in zip(model.input_names(), example, strict=True)},
                "planned_memory_bytes": int(sum(plan.non_const_buffer_sizes)),
                "delegate_calls": sum(1 for c in plan.chains[0].instructions
                                      if type(c.instr_args).__name__ == "DelegateCall")}  # fmt: skip
