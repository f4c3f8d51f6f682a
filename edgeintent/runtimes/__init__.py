"""The runtime layer: every artifact runs through ONE registry of runtimes, torch-free.

- :class:`Artifact` is what it takes to open an artifact: the runtime's registry name, the path, the
  runtime's own precision (``fp32``/``fp16`` for onnxruntime and the MIL reference, ``normal``/``low``
  for MNN) and the signature's input and output names. An export target turns its artifact metadata
  into one (``Target.artifact``); nothing below the exporters knows about targets.
- :data:`RUNTIMES` holds one :class:`Runtime` per way of running an artifact: ``onnxruntime``,
  ``mnn-session``, ``mnn-module`` (MNN's Module API, which runs control flow), ``mil-reference``
  (CoreML ML programs on Linux; functional only, never timed), ``coreml`` (``MLModel.predict``,
  macOS only), ``torch`` (a bundle's torch model, eager: bench's reference) and ``litert`` /
  ``litert-builtin`` (ai-edge-litert's interpreter with / without the XNNPACK delegate; static shapes
  run through ``fixed_shapes.FixedShapes``).
- A **provider** opens artifacts on a device: :class:`HostProvider` on this machine, and
  ``emulation.ArmProvider`` in the aarch64 builds under qemu. Parity is handed one;
  ``providers.provider`` picks it from a ``--device`` name at the edge.
- ``sessions.py`` (the onnxruntime and MNN sessions), ``litert_session.py`` and ``fixed_shapes.py`` (LiteRT),
  ``worker.py`` (the aarch64 worker, which opens all three runtimes),
  ``emulation.py`` (its environment), ``child.py`` (the measuring process) and ``limits.py`` (the
  limits it applies) complete the layer.

Importing this package imports neither torch nor any runtime; opening an artifact imports its runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeintent.errors import ExportError
from edgeintent.registry import Registry


@dataclass(frozen=True)
class Artifact:
    """An artifact as a runtime opens it."""

    runtime: str  # a RUNTIMES name
    path: str
    precision: str  # the runtime's precision setting
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    target: str = ""  # the export target, for messages ("onnx artifact needs input …")


class Session:
    """A loaded artifact: ``run(feeds) -> {output: array}``; ``runtime`` (name and version), ``arch``,
    ``inputs`` and ``outputs``. A feed it lacks is a one-line ``ExportError`` naming the input."""

    def __init__(self, impl, artifact: Artifact, arch: str | None = None) -> None:
        self._impl = impl
        self.artifact = artifact
        self.runtime: str = impl.runtime
        self.arch: str = arch or platform.machine()
        self.inputs: list[str] = list(impl.inputs)
        self.outputs: list[str] = list(impl.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ExportError(f"{self.artifact.target or self.artifact.runtime} artifact needs input {missing[0]!r}")
        return self._impl.run(feeds)

    def close(self) -> None:
        close = getattr(self._impl, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Runtime:
    name: str
    label: str  # the short name reports print (both MNN APIs are "mnn")
    module: str  # the importable module it needs
    dist: str  # the distribution whose version it reports
    open: Callable[[Artifact, int], object]  # (artifact, threads) -> an object with run/runtime/inputs/outputs
    timed: bool = True  # False: functional only, never timed as if it were a phone
    arm: bool = False  # its aarch64 Linux build runs under cpu-arm emulation (the worker opens it)
    not_on_arm: str = "no aarch64 runtime here"  # why not, when ``arm`` is False
    preload_modules: tuple[str, ...] = ()  # imported before a measurement's memory cap (default: ``module``)
    platform_only: str | None = None  # ``platform.system()`` it needs, e.g. "Darwin"
    #: ``"module:function"``, ``function(artifact, feeds, runs) -> dict``: what the runtime reports about an
    #: artifact beyond its timings (a per-op profile, planned memory); bench's measuring child calls it in
    #: its own uncapped process and puts the dict in the row's ``runtime_details``
    details: str | None = None

    def available(self) -> str | None:
        """Why this runtime cannot run here, or None."""
        if self.platform_only and platform.system() != self.platform_only:
            return f"{self.label} runs only on {self.platform_only} (this is {platform.system()})"
        return None if importlib.util.find_spec(self.module) is not None else f"{self.module} is not installed"

    def version(self) -> str:
        from importlib import metadata

        try:
            return metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    def preload(self) -> None:
        from edgeintent.runtimes.sessions import quiet_fd

        with quiet_fd():  # MNN prints a CPU-feature line when it loads
            for module in self.preload_modules or (self.module,):
                importlib.import_module(module)


RUNTIMES: Registry[Runtime] = Registry("runtime")


def _ort(art: Artifact, threads: int):
    from edgeintent.runtimes.sessions import OrtSession

    try:
        return OrtSession(art.path, art.precision, threads)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's load errors (Fail, InvalidGraph, …) share no base class
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ExportError(f"onnxruntime cannot load {art.path}: {lines[0] if lines else type(exc).__name__}") from None


def _mnn(cls_name: str) -> Callable[[Artifact, int], object]:
    def open_(art: Artifact, threads: int):
        from edgeintent.runtimes import sessions

        with sessions.quiet_fd():
            return getattr(sessions, cls_name)(art.path, art.precision, threads, list(art.inputs), list(art.outputs))

    return open_


def _mil(art: Artifact, threads: int):
    from edgeintent.runtimes.mil_reference import MilSession

    return MilSession(Path(art.path))


def _coreml(art: Artifact, threads: int):  # pragma: no cover - macOS only
    from edgeintent.runtimes.coreml_native import CoremlSession

    return CoremlSession(Path(art.path))


def _torch(art: Artifact, threads: int):
    from edgeintent.runtimes.torch_reference import TorchSession

    return TorchSession(Path(art.path), threads)


_NOT_APPLE = "Core ML runs only on Apple devices (host parity checks its graph with the MIL reference)"

RUNTIMES.register("onnxruntime", Runtime("onnxruntime", "onnxruntime", "onnxruntime", "onnxruntime", _ort, arm=True))
RUNTIMES.register("mnn-session", Runtime("mnn-session", "mnn", "MNN", "MNN", _mnn("MnnSession"), arm=True))
RUNTIMES.register("mnn-module", Runtime("mnn-module", "mnn", "MNN", "MNN", _mnn("MnnModule"), arm=True))
RUNTIMES.register("mil-reference", Runtime("mil-reference", "mil-reference", "coremltools", "coremltools", _mil,
                                           timed=False, not_on_arm=_NOT_APPLE))  # fmt: skip
RUNTIMES.register("coreml", Runtime("coreml", "coreml", "coremltools", "coremltools", _coreml, not_on_arm=_NOT_APPLE,
                                    platform_only="Darwin"))  # fmt: skip
RUNTIMES.register("torch", Runtime("torch", "torch", "torch", "torch", _torch,
                                   preload_modules=("torch", "edgeintent.toolkit.bundle", "edgeintent.toolkit.models.exportable",
                                                    "edgeintent.runtimes.torch_reference")))  # fmt: skip


def _executorch(art: Artifact, threads: int):
    from edgeintent.runtimes.executorch_session import ExecuTorchSession

    try:
        return ExecuTorchSession(art.path, art.inputs, art.outputs)
    except (RuntimeError, ValueError) as exc:  # executorch's load errors
        raise ExportError(f"ExecuTorch cannot load {art.path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


RUNTIMES.register("executorch", Runtime("executorch", "executorch", "executorch", "executorch", _executorch,
                                        not_on_arm="not in the cpu-arm environment: executorch 1.5.1 has an aarch64 wheel, but its Python runtime "
                                                   "(executorch.extension.pybindings.portable_lib) imports torch, which that environment does not carry",
                                        preload_modules=("torch", "executorch.runtime"),
                                        details="edgeintent.runtimes.executorch_session:details"))  # fmt: skip


def _litert(art: Artifact, threads: int):
    from edgeintent.runtimes.litert_session import KINDS

    return KINDS[art.runtime](art.path, art.precision, threads, art.inputs, art.outputs)


# LiteRT (TFLite) with its default XNNPACK delegate, and with the built-in kernels only; on cpu-arm the
# aarch64 worker opens them with the same litert_session.KINDS (its environment has ai-edge-litert's
# manylinux_2_27_aarch64 wheel when the host has ai-edge-litert: emulation.OPTIONAL_WHEELS)
RUNTIMES.register("litert", Runtime("litert", "litert", "ai_edge_litert", "ai-edge-litert", _litert, arm=True))
RUNTIMES.register("litert-builtin", Runtime("litert-builtin", "litert", "ai_edge_litert", "ai-edge-litert", _litert, arm=True))


class HostProvider:
    """Opens artifacts in this machine's runtimes."""

    device = "host"
    #: an ONNX breach can be traced to its first divergent node by replaying the graph here
    diagnose = True

    def prepare(self) -> None:
        """Nothing to set up on the host."""

    def supports(self, runtime: str) -> str | None:
        """Why ``runtime`` cannot run on this device, or None."""
        return RUNTIMES.get(runtime).available()

    def open(self, art: Artifact, threads: int = 1) -> Session:
        rt = RUNTIMES.get(art.runtime)
        why = rt.available()
        if why:
            raise ExportError(f"cannot run {art.path}: {why}")
        return Session(rt.open(art, threads), art)

    def info(self) -> dict | None:
        return None


def open_artifact(art: Artifact, threads: int = 1) -> Session:
    """``art`` in this machine's runtime."""
    return HostProvider().open(art, threads)
