"""Runners with one interface, light enough to load in a measuring process without torch.

``edgeintent.exporters`` imports torch (its wrapper module is a ``torch.nn.Module``), which would put
~200 MB of torch into the RSS of an onnxruntime or MNN measurement. These runners import only numpy
and their runtime. ``tests/test_bench.py`` checks that they give the same outputs as the exporters'
runners on the golden set, and that the onnxruntime session options are the exporter's.

- ``onnxruntime`` runs ``.onnx`` artifacts (the exporter's session options: fp16 at ENABLE_EXTENDED);
- ``mnn`` runs ``.mnn`` artifacts through the session API (as ``exporters/mnn.py``);
- ``torch`` runs the bundle's torch model eagerly (the reference);
- ``mil-reference`` runs CoreML packages through the numpy MIL reference: functional only, never timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeintent.runtimes.worker import MnnSessionRunner, OnnxRuntimeRunner, quiet_fd1
from edgeintent.runtimes.worker import ort_session_options  # noqa: F401 - the measuring child imports it from here


@dataclass(frozen=True)
class Runtime:
    name: str
    target: str | None  # the export target whose artifacts it runs (None: the torch reference)
    timed: bool  # False: functional only (never timed as if it were a phone)
    load: Callable[..., object]  # (path, precision, threads, meta) -> object with .run(feeds)
    version: Callable[[], str]
    preload: Callable[[], None]  # import the runtime library (before the memory cap)


class _Ort(OnnxRuntimeRunner):
    def __init__(self, path: Path, precision: str, threads: int, meta: dict) -> None:
        super().__init__(str(path), precision, threads)


class _Mnn:
    """The session runner the exporters and the emulated ARM worker use (torch-free module)."""

    def __init__(self, path: Path, precision: str, threads: int, meta: dict) -> None:
        
        with quiet_fd1():
            self._impl = MnnSessionRunner(str(path), "normal", threads, [i["name"] for i in meta["inputs"]],
                                          list(meta["outputs"]))  # fmt: skip
        self.inputs, self.outputs = self._impl.inputs, self._impl.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._impl.run(feeds)


class _Torch:
    """The bundle's torch model, eager, through the exported signature (``path`` is the bundle)."""

    def __init__(self, path: Path, precision: str, threads: int, meta: dict) -> None:
        import torch

        from edgeintent.exporters.common import ExportModule, output_names
        from edgeintent.toolkit.bundle import load_bundle
        from edgeintent.toolkit.training.trainer import load_model

        torch.set_num_threads(threads)
        model = load_model(load_bundle(path))
        self.module = ExportModule(model).eval()
        self.outputs = output_names(model)
        self._torch = torch

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            res = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.module.names))
        return {k: v.numpy() for k, v in zip(self.outputs, res, strict=True)}


class _Mil:
    def __init__(self, path: Path, precision: str, threads: int, meta: dict) -> None:
        from edgeintent.exporters import get_target

        self.runner = get_target("coreml").runner(path, meta, threads=threads)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.run(feeds)


def _version(dist: str) -> Callable[[], str]:
    def get() -> str:
        from importlib import metadata

        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return get


def _preload(*modules: str) -> Callable[[], None]:
    def load() -> None:
        for module in modules:
            if module == "MNN":
                with quiet_fd1():
                    __import__(module)
            else:
                __import__(module)

    return load


RUNTIMES: dict[str, Runtime] = {}


def register_runtime(rt: Runtime) -> None:
    if rt.name in RUNTIMES:
        raise ValueError(f"runtime {rt.name!r} is already registered")
    RUNTIMES[rt.name] = rt


register_runtime(Runtime("onnxruntime", "onnx", True, _Ort, _version("onnxruntime"), _preload("onnxruntime")))
register_runtime(Runtime("mnn", "mnn", True, _Mnn, _version("MNN"), _preload("MNN")))
register_runtime(Runtime("torch", None, True, _Torch, _version("torch"), _preload("torch", "edgeintent.toolkit.training.trainer", "edgeintent.toolkit.bundle", "edgeintent.exporters.common")))
register_runtime(Runtime("mil-reference", "coreml", False, _Mil, _version("coremltools"), _preload("edgeintent.exporters", "edgeintent.exporters.coreml")))


def runtime_for_target(target: str) -> Runtime:
    for rt in RUNTIMES.values():
        if rt.target == target:
            return rt
    from edgeintent.errors import ConfigError

    raise ConfigError(f"no runtime runs {target!r} artifacts in bench")


def runtime_available(rt: Runtime) -> str | None:
    """Why ``rt`` cannot run here, or None."""
    import importlib.util

    module = {"onnxruntime": "onnxruntime", "mnn": "MNN", "torch": "torch", "mil-reference": "coremltools"}[rt.name]
    return None if importlib.util.find_spec(module) is not None else f"{module} is not installed"
