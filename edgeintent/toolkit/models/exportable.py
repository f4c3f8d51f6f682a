"""A model through its declared signature, in torch: batches, predictions and the export wrapper.

- :func:`batch_for` / :func:`feeds`: the model's inputs for rows of :class:`Samples`, as tensors or as
  the numpy feeds of the exported signature (the same values);
- :class:`ExportModule`: positional inputs in signature order → the signature's outputs, the module
  every exporter traces;
- :func:`torch_outputs` / :func:`outputs_in_batches`: the reference outputs that exported artifacts
  are compared with;
- :func:`predict_logits`: logits per task for torch and scikit-learn models alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from edgeintent.toolkit.features import Samples
from edgeintent.toolkit.models.base import samples_to_batch
from edgeintent.toolkit.models.signature import embedding_names, signature_of


def torch_model(model):
    """``model`` when it is a torch module with a declared signature; else a one-line ``ExportError``."""
    signature_of(model)
    return model


def batch_for(model, samples: Samples, idx: np.ndarray, widths: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """The tensors ``model.forward`` reads for ``samples[idx]`` (the model's own ``prepare_batch`` if it has one)."""
    prep = getattr(model, "prepare_batch", None)
    if prep is not None:
        return prep(samples, idx, widths=widths)
    return samples_to_batch(samples, model.streams, idx, widths=widths)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@torch.no_grad()
def predict_logits(model, samples: Samples, idx: np.ndarray | None = None, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """Logits per task for ``samples[idx]`` (torch or scikit-learn models)."""
    idx = np.arange(len(samples)) if idx is None else np.asarray(idx)
    if not isinstance(model, torch.nn.Module):
        return model.predict_logits(samples.take(idx))
    model.eval()
    parts: dict[str, list[np.ndarray]] = {t: [] for t in model.tasks}
    for lo in range(0, len(idx), batch_size):
        out = model(batch_for(model, samples, idx[lo : lo + batch_size]))
        for t in model.tasks:
            parts[t].append(out[t].float().numpy())
    return {t: np.concatenate(v) if v else np.empty(0, np.float32) for t, v in parts.items()}


@torch.no_grad()
def predict_embeddings(model, samples: Samples, idx: np.ndarray | None = None, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """The vector outputs (``signature().embeddings``) for ``samples[idx]``: name → (n, D) float32."""
    names = embedding_names(model)
    if not names:
        return {}
    idx = np.arange(len(samples)) if idx is None else np.asarray(idx)
    model.eval()
    parts: dict[str, list[np.ndarray]] = {e: [] for e in names}
    for lo in range(0, len(idx), batch_size):
        out = model(batch_for(model, samples, idx[lo : lo + batch_size]))
        for e in names:
            parts[e].append(out[e].float().numpy())
    return {e: np.concatenate(v) if v else np.empty((0, 0), np.float32) for e, v in parts.items()}


class ExportModule(torch.nn.Module):
    """Positional inputs (signature order) → (prob per task…, logit per task…, embedding…)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = torch_model(model).eval()
        self.names = list(model.input_names())
        self.tasks = list(model.tasks)
        self.embeddings = embedding_names(model)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(self.names, inputs, strict=True)))
        # Every output is a leaf of its own Reshape. MNN's converter (3.6) mislabels a graph output
        # that another node also reads: with ``prob = sigmoid(logit)`` and ``logit`` an output, MNN
        # returned the (B, 1) probabilities under the logit's name (tests/test_export.py keeps a canary).
        cols = [out[t].unsqueeze(1) for t in self.tasks]
        vectors = tuple(out[e] for e in self.embeddings)  # (B, D) each, leaves of the graph
        return tuple(torch.sigmoid(c).reshape(-1) for c in cols) + tuple(c.reshape(-1) for c in cols) + vectors


def feeds(model, samples: Samples, idx: np.ndarray | None = None, widths: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """numpy inputs of the exported signature for ``samples[idx]`` (the torch batch, same values)."""
    idx = np.arange(len(samples)) if idx is None else np.asarray(idx)
    batch = batch_for(model, samples, idx, widths=widths)
    return {n: batch[n].numpy() for n in torch_model(model).input_names()}


def static_example(model, spec, samples: Samples) -> tuple[torch.Tensor, ...]:
    """The first sample with every stream at its full window (``spec.max_len``; without a FeatureSpec, as
    for the ranker's scorer, the samples' stored width), in the exported signature's input order: the
    example a static-shape target (ExecuTorch, LiteRT) exports the program at."""
    streams = tuple(getattr(model, "streams", ()))
    widths = {s: int(spec.max_len[s]) if spec is not None else int(samples.x[s].shape[1]) for s in streams} or None
    f = feeds(model, samples, np.arange(1), widths=widths)
    return tuple(torch.from_numpy(np.ascontiguousarray(f[n])) for n in model.input_names())


@torch.no_grad()
def torch_outputs(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The torch model on exported-signature feeds, as the exported outputs."""
    wrapper = ExportModule(model)
    res = wrapper(*(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in wrapper.names))
    return {k: v.numpy() for k, v in zip(model.output_names(), res, strict=True)}


def outputs_in_batches(run: Callable[[dict], dict], model, samples: Samples, idx: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """``run(feeds)`` over ``samples[idx]`` in batches of ``batch`` rows; every output as float64 (n,),
    a vector output (``signature().embeddings``) as (n, D)."""
    outs: dict[str, list[np.ndarray]] = {o: [] for o in model.output_names()}
    vectors = set(embedding_names(model))
    for lo in range(0, len(idx), batch):
        rows = idx[lo : lo + batch]
        got = run(feeds(model, samples, rows))
        for o in outs:
            v = np.asarray(got[o], np.float64)
            outs[o].append(v.reshape(len(rows), -1) if o in vectors else v.reshape(-1))
    return {o: np.concatenate(v) for o, v in outs.items()}


def example_inputs(model, samples: Samples, rows: int = 8) -> tuple[torch.Tensor, ...]:
    """A small real batch (the first rows of ``samples``) to trace the model with."""
    f = feeds(model, samples, np.arange(min(rows, len(samples))))
    return tuple(torch.from_numpy(f[n]) for n in model.input_names())
