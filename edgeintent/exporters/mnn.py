"""MNN target (the runtime of the DIPN deployment): ONNX → ``.mnn``, run by MNN's Python runtime.

- Conversion uses the converter's native RNN op (``--useOriginRNNImpl``). Without it MNN rewrites
  GRU/LSTM into a While loop that is ~6x slower here and runs only through the Module API.
- **Never** ``import MNN.tools`` or run the ``mnn`` / ``mnnconvert`` / ``mnnquant`` commands: that code
  runs ``pip install -U aliyun-log-python-sdk`` and sends the converter's arguments and a machine id
  to a remote log endpoint. We call the compiled converter (the top-level ``_tools`` extension that
  the MNN wheel installs) directly, in a child process so its C++ logging and any crash stay out of
  ours. ``tests/test_export.py`` converts with the network cut off and checks that nothing was
  installed and that ``MNN.tools`` was never imported.
- fp16 stores weights as fp16 (``--fp16``) and runs with ``precision=low``, as an app that ships an
  fp16 model does: fp16 arithmetic on ARM cores that have it (ARMv8.2+); x86 computes in fp32 either
  way, so only ``edgeintent parity --device cpu-arm`` sees the fp16 arithmetic.
- Inference uses the session API (runtime ``mnn-session``), resizing inputs when a request's shapes change.
- ``rnn="while-loop"`` (export option) converts without ``--useOriginRNNImpl``; such an artifact runs
  through the Module API (runtime ``mnn-module``: the session API cannot run the loop). At
  ``precision=low`` on aarch64 it is far from torch while the host passes: the ARM-only failure
  ``tests/test_emulation.py`` keeps.
- The artifact's metadata records the API and precision it runs with (``mnn_api``, ``mnn_precision``);
  every runner (host, aarch64 worker, bench's measuring child) opens it that way (``runtime_for``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from edgeintent.errors import ExportError
from edgeintent.exporters import ArtifactMeta, Target, register_target

_CONVERT = """
import sys
import _tools  # MNN's compiled converter; never MNN.tools (see edgeintent/exporters/mnn.py)
argv = ["mnnconvert", "-f", "ONNX", "--modelFile", sys.argv[1], "--MNNModel", sys.argv[2], "--bizCode", "edgeintent"]
_tools.mnnconvert(argv + sys.argv[3:])
assert "MNN.tools" not in sys.modules
"""


def convert_onnx(onnx_path: Path, out: Path, native_rnn: bool = True, fp16: bool = False, extra_flags: list[str] = ()) -> str:
    """Run MNN's converter on an ONNX file; returns its log. Raises ExportError on failure."""
    flags = (["--useOriginRNNImpl"] if native_rnn else []) + (["--fp16"] if fp16 else []) + list(extra_flags)
    try:
        proc = subprocess.run([sys.executable, "-c", _CONVERT, str(onnx_path), str(out), *flags],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ExportError("MNN conversion did not finish in 600 s") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0 or "Converted Success" not in log:
        last = next((ln for ln in reversed(log.strip().splitlines()) if ln.strip()), "no output")
        raise ExportError(f"MNN conversion failed (exit {proc.returncode}): {last.strip()}")
    return log


RNN_IMPLS = ("native", "while-loop")


def mnn_runtime(meta: ArtifactMeta) -> tuple[str, str]:
    """``(api, precision)`` an artifact runs with: ``session``/``module`` and ``normal``/``low``.

    Artifacts exported before these were recorded run like their first exports did: session API,
    ``low`` for fp16 (identical to ``normal`` on x86).
    """
    api = meta.extra.get("mnn_api", "session")
    precision = meta.extra.get("mnn_precision", "low" if meta.precision == "fp16" else "normal")
    return api, precision


@register_target("mnn")
class MnnTarget(Target):
    extension = ".mnn"
    precisions = ("fp32", "fp16")
    runtime = "MNN (session API)"
    runtimes = ("mnn-session", "mnn-module")
    notes = "from ONNX with the native RNN op; converter called directly, never MNN.tools"
    requires = ("MNN", "_tools")

    def missing(self) -> str | None:
        why = super().missing()
        return f"{why} (pip install 'edgeintent[mnn]')" if why else None

    options = ("rnn",)

    def export(self, model, spec, samples, out: Path, precision: str, rnn: str = "native") -> dict:
        from edgeintent.exporters.onnx import export_proto, serialize

        if rnn not in RNN_IMPLS:
            raise ExportError(f"mnn option rnn={rnn!r}: choose one of {', '.join(RNN_IMPLS)}")
        native = rnn == "native"
        with tempfile.TemporaryDirectory(prefix="edgeintent-mnn-") as tmp:
            src = Path(tmp) / "model.onnx"
            src.write_bytes(serialize(export_proto(model, spec, samples, "fp32")))
            convert_onnx(src, out, native_rnn=native, fp16=precision == "fp16")
        flags = (["--useOriginRNNImpl"] if native else []) + (["--fp16"] if precision == "fp16" else [])
        return {"converter_flags": flags, "mnn_rnn": rnn, "mnn_api": "session" if native else "module",
                "mnn_precision": "low" if precision == "fp16" else "normal"}  # fmt: skip

    def runtime_for(self, meta: ArtifactMeta) -> tuple[str, str]:
        api, precision = mnn_runtime(meta)
        return f"mnn-{api}", precision
