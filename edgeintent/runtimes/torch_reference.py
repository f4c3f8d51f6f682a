"""The ``torch`` runtime: a bundle's torch model, eager, through its exported signature.

Bench times it as the reference the exported artifacts are compared with; ``Artifact.path`` is the
bundle directory. It is the one runtime that imports torch (when opened, not when imported).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TorchSession:
    def __init__(self, bundle_dir: Path, threads: int) -> None:
        import torch

        from edgeintent.toolkit.bundle import load_bundle, load_model
        from edgeintent.toolkit.models.exportable import ExportModule

        torch.set_num_threads(threads)
        model = load_model(load_bundle(bundle_dir))
        self.module = ExportModule(model).eval()
        self.inputs = list(self.module.names)
        self.outputs = model.output_names()
        self.runtime = f"torch {torch.__version__}"
        self._torch = torch

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            res = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.module.names))
        return {k: v.numpy() for k, v in zip(self.outputs, res, strict=True)}
