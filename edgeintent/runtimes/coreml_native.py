"""The ``coreml`` runtime: ``MLModel.predict`` on macOS (CPU only). Linux has no CoreML runtime; there
CoreML packages run in the MIL reference (``mil_reference.py``)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from edgeintent.runtimes.mil_reference import quiet_coremltools


class CoremlSession:  # pragma: no cover - macOS only
    def __init__(self, path: Path) -> None:
        ct = quiet_coremltools()
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        self.runtime = f"CoreML (macOS {platform.mac_ver()[0]})"
        desc = self.model.get_spec().description
        self.inputs = [i.name for i in desc.input]
        self.outputs = [o.name for o in desc.output]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = {n: np.asarray(feeds[n], np.int32 if np.issubdtype(feeds[n].dtype, np.integer) else np.float32) for n in self.inputs}
        out = self.model.predict(x)
        return {k: np.asarray(out[k], np.float32) for k in self.outputs}
