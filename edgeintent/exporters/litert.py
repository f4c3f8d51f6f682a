"""LiteRT target (TFLite, Android's most common runtime): ``torch.export`` → litert-torch → ``.tflite``,
run by ai-edge-litert's interpreter (runtime ``litert``: XNNPACK delegate; ``litert-builtin``: none).

**Two environments.** The runtime (``ai-edge-litert``, ~20 MB) installs in the project's environment
(extra ``litert``). The converter (``litert-torch`` 0.10 with jax, transformers and litert-converter,
~1.3 GB) pins ``typing_extensions`` 4.12.2 and ``pydantic`` 2.11 through litert-converter's xdsl, which
would downgrade the project's pydantic 2.14 (Ray's), so ``make setup`` builds it in a side venv,
``.venv-litert`` (its own torch 2.13.0). The export runs ``torch.export`` here, saves the program
(``torch.export.save``, a ``.pt2`` with its example inputs) and hands it to a converter process in the
side venv, which needs no edgeintent code. The converter is found, in order: ``$EDGEINTENT_LITERT_PYTHON``;
this interpreter when it imports ``litert_torch`` itself; ``.venv-litert/bin/python`` beside this
environment's ``sys.prefix``.

**Static shapes.** The program is exported at one row with every stream at the bundle's ``max_len``:
a dynamic batch fails in litert-torch's JAX lowering (litert-torch#685), a dynamic length fails because
``torch.export`` unrolls ``nn.GRU``/``nn.LSTM`` over the example's length, and a static ``.tflite``
cannot be resized. The session pads shorter windows (the ``*_len`` inputs mask them), runs batches row
by row and refuses longer windows in one line (``edgeintent.runtimes.fixed_shapes``). Integer inputs
are int32 in the artifact (litert-torch downcasts int64 model I/O); the session casts.

Export option ``delegate``: ``xnnpack`` (default: the interpreter's default XNNPACK delegate) or
``none`` (built-in kernels only); recorded in the metadata, every runner opens the artifact that way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from edgeintent.errors import ConfigError, ExportError
from edgeintent.exporters import ArtifactMeta, Target, register_target

DELEGATES = ("xnnpack", "none")
SIDE_VENV = ".venv-litert"
ENV_VAR = "EDGEINTENT_LITERT_PYTHON"
TIMEOUT_S = 1800

#: run by the converter's python (no edgeintent there): ``convert PT2 OUT`` or ``quantize TFLITE OUT RECIPE``;
#: prints one JSON line with the versions used
_TOOL = r"""
import contextlib, io, json, sys, warnings
from importlib import metadata
warnings.simplefilter("ignore")
mode, src, out = sys.argv[1:4]
log = io.StringIO()
with contextlib.redirect_stdout(log):
    if mode == "convert":
        import torch
        import litert_torch
        ep = torch.export.load(src)
        args, kwargs = ep.example_inputs
        litert_torch.convert(ep.module(), args, kwargs or None).export(out)
        dists = ("litert-torch", "litert-converter", "torch")
    else:
        from ai_edge_quantizer import algorithm_manager, quantizer, recipe, recipe_manager
        if sys.argv[4] == "fp16_weights":  # float casting: fp16 weights of the ops it supports, fp32 arithmetic
            rp = recipe_manager.RecipeManager()
            for op in (recipe.TFLOperationName.FULLY_CONNECTED, recipe.TFLOperationName.EMBEDDING_LOOKUP):
                rp.add_weight_only_config(regex=".*", operation_name=op, num_bits=16,
                                          algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
            chosen = rp.get_quantization_recipe()
        else:
            chosen = getattr(recipe, sys.argv[4])()
        quantizer.Quantizer(src, chosen).quantize().export_model(out, overwrite=True)
        dists = ("ai-edge-quantizer",)
print("EDGEINTENT-LITERT " + json.dumps({d: metadata.version(d) for d in dists}))
"""


def converter_python() -> str | None:
    """The python that runs litert-torch, or None."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env if Path(env).is_file() else None
    if importlib.util.find_spec("litert_torch") is not None:
        return sys.executable
    side = Path(sys.prefix).parent / SIDE_VENV / "bin" / "python"
    return str(side) if side.is_file() else None


def run_tool(args: list[str], what: str) -> dict:
    """Run the converter script in the converter's python; the versions it reports. ExportError on failure."""
    python = converter_python()
    if python is None:
        raise ExportError(f"cannot {what}: litert-torch not found (make setup builds {SIDE_VENV}; or set {ENV_VAR})")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)  # the side venv must not see this environment's packages
    try:
        proc = subprocess.run([python, "-c", _TOOL, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise ExportError(f"LiteRT {what} did not finish in {TIMEOUT_S} s") from None
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("EDGEINTENT-LITERT ")), None)
    if proc.returncode != 0 or line is None:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "no output")
        raise ExportError(f"LiteRT {what} failed (exit {proc.returncode}): {err[:300]}")
    return json.loads(line.split(" ", 1)[1])


def save_program(model, example: tuple, path: Path) -> None:
    """``torch.export`` of the model's export module at ``example``'s shapes, saved with its example."""
    import torch

    from edgeintent.toolkit.models.exportable import ExportModule

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # nn.GRU/LSTM's _flat_weights "assigned during export"
        try:
            ep = torch.export.export(ExportModule(model).eval(), example, strict=False)
        except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"litert: torch.export failed: {type(exc).__name__}: {first}") from None
        torch.export.save(ep, str(path))


def convert(model, spec, samples, out: Path) -> dict:
    """Write ``out`` (a .tflite); returns the metadata the conversion adds."""
    from edgeintent.toolkit.models.exportable import static_example

    example = static_example(model, spec, samples)
    with tempfile.TemporaryDirectory(prefix="edgeintent-litert-") as tmp:
        pt2 = Path(tmp) / "program.pt2"
        t0 = time.perf_counter()
        save_program(model, example, pt2)
        t1 = time.perf_counter()
        versions = run_tool(["convert", str(pt2), str(out)], "conversion")
        t2 = time.perf_counter()
    if not out.is_file() or out.stat().st_size == 0:
        raise ExportError("LiteRT conversion wrote no model")
    return {"converter": versions, "static_shapes": {n: list(t.shape) for n, t in zip(model.input_names(), example, strict=True)},
            "int_inputs": "int32", "export_seconds": {"torch_export": round(t1 - t0, 2), "convert": round(t2 - t1, 2)}}  # fmt: skip


@register_target("litert")
class LiteRTTarget(Target):
    extension = ".tflite"
    precisions = ("fp32",)
    dynamic_batch = False
    dynamic_length = False
    runtime = "ai-edge-litert interpreter (XNNPACK delegate)"
    runtimes = ("litert", "litert-builtin")
    notes = ("static shapes (batch 1, streams at max_len): the session pads shorter windows, runs batches row by row, "
             "refuses longer ones; int32 integer inputs; converter in the .venv-litert side env")  # fmt: skip
    requires = ("ai_edge_litert",)
    options = ("delegate",)

    def missing(self) -> str | None:
        if converter_python() is None:
            return f"litert-torch not found (make setup builds {SIDE_VENV}; or set {ENV_VAR})"
        return None

    def export(self, model, spec, samples, out: Path, precision: str, delegate: str = "xnnpack") -> dict:
        if delegate not in DELEGATES:
            raise ConfigError(f"litert option delegate={delegate!r}: choose one of {', '.join(DELEGATES)}")
        return {**convert(model, spec, samples, out), "litert_delegate": delegate}

    def runtime_for(self, meta: ArtifactMeta) -> tuple[str, str]:
        return ("litert-builtin" if meta.extra.get("litert_delegate") == "none" else "litert"), meta.precision
