"""What every target shares: the exported signature, the wrapper module and the feeds.

The signature of an exported model (the same on every target, so a phone app can switch runtimes):

- inputs, in ``model.input_names()`` order: per stream ``s`` the event ids ``s`` (B, T_s, F_s) int,
  the real lengths ``s_len`` (B,) int, the event ages ``s_age`` (B, T_s) float32 log1p(seconds) when
  the model reads them; ``coupon`` (B,) float32; for the ``rnn`` baseline the time-merge order
  ``merge_idx`` (B, ΣT_s) int and ``merge_len`` (B,) int. B and every T_s are dynamic and
  independent (right padding; a row's padding never changes its outputs).
- outputs: ``prob_<task>`` (B,) and ``logit_<task>`` (B,) for every task. Logits are exported too:
  probabilities saturate, and ranking metrics need the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgeintent.errors import ExportError
from edgeintent.toolkit.features import Samples



@dataclass(frozen=True)
class InputSpec:
    """One graph input: ``dims`` holds ints for fixed sizes and names for dynamic ones."""

    name: str
    dtype: str  # "int64" | "float32"
    dims: tuple[int | str, ...]


def torch_model(model):
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "input_names"):
        name = getattr(model, "registry_name", type(model).__name__)
        raise ExportError(f"{name} is not a torch model with an exportable signature; only torch models export (not gbdt)")
    return model


def input_specs(model, spec) -> list[InputSpec]:
    """The exported inputs of ``model`` (its ``input_names()``) with dtypes and dynamic dims."""
    out = []
    for name in torch_model(model).input_names():
        base = name.rsplit("_", 1)[0]
        if name in model.streams:
            out.append(InputSpec(name, "int64", ("batch", f"T_{name}", len(spec.features[name]))))
        elif name.endswith("_len") or name == "merge_len":
            out.append(InputSpec(name, "int64", ("batch",)))
        elif name.endswith("_age") and base in model.streams:
            out.append(InputSpec(name, "float32", ("batch", f"T_{base}")))
        elif name == "coupon":
            out.append(InputSpec(name, "float32", ("batch",)))
        elif name == "merge_idx":
            out.append(InputSpec(name, "int64", ("batch", "T_merged")))
        else:
            raise ExportError(f"no export signature for input {name!r}")
    return out


def output_names(model) -> list[str]:
    tasks = list(model.tasks)
    return [f"prob_{t}" for t in tasks] + [f"logit_{t}" for t in tasks]


class ExportModule(torch.nn.Module):
    """Positional inputs (``input_names`` order) → (prob per task…, logit per task…)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = torch_model(model).eval()
        self.names = list(model.input_names())
        self.tasks = list(model.tasks)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(self.names, inputs, strict=True)))
        # Every output is a leaf of its own Reshape. MNN's converter (3.6) mislabels a graph output
        # that another node also reads: with ``prob = sigmoid(logit)`` and ``logit`` an output, MNN
        # returned the (B, 1) probabilities under the logit's name (tests/test_export.py keeps a canary).
        cols = [out[t].unsqueeze(1) for t in self.tasks]
        return tuple(torch.sigmoid(c).reshape(-1) for c in cols) + tuple(c.reshape(-1) for c in cols)


def feeds(model, samples: Samples, idx: np.ndarray | None = None, widths: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """numpy inputs of the exported signature for ``samples[idx]`` (the torch batch, same values)."""
    from edgeintent.toolkit.training.trainer import batch_for

    idx = np.arange(len(samples)) if idx is None else np.asarray(idx)
    batch = batch_for(model, samples, idx, widths=widths)
    return {n: batch[n].numpy() for n in torch_model(model).input_names()}


@torch.no_grad()
def torch_outputs(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The torch model on exported-signature feeds, as the exported outputs."""
    wrapper = ExportModule(model)
    res = wrapper(*(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in wrapper.names))
    return {k: v.numpy() for k, v in zip(output_names(model), res, strict=True)}


def example_inputs(model, samples: Samples, rows: int = 8) -> tuple[torch.Tensor, ...]:
    """A small real batch (the first rows of ``samples``) to trace the model with."""
    f = feeds(model, samples, np.arange(min(rows, len(samples))))
    return tuple(torch.from_numpy(f[n]) for n in model.input_names())
