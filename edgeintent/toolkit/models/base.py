"""Building blocks shared by the torch models: batches, embeddings, masks and masked attention.

Conventions every torch model follows (the exporters rely on them):

- A **batch** is a dict of tensors: for each stream ``s`` the ids ``batch[s]`` (B, T_s, F_s) int64,
  the lengths ``batch[s + "_len"]`` (B,) int64 (right padding, never packed sequences) and the age of
  each event at the decision time ``batch[s + "_age"]`` (B, T_s) float32, in log1p(seconds) (0 on
  padding; the phone computes it as ``log1p((t - ts) / 1000)``); and ``batch["coupon"]`` (B,) float32,
  the coupon amount offered at the decision point (0 when none).
- ``forward(batch)`` returns a dict ``task -> logits`` (B,); probabilities are ``sigmoid(logits)``.
- Masks are additive (−1e4) before a softmax and multiplicative after it, and a stream with no
  events yields exact zeros, never NaN.
- ``model.config()`` is JSON (name, streams, tasks, hyper-parameters): with the FeatureSpec it rebuilds
  the module, whose ``state_dict`` goes to safetensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeintent.toolkit.features import FeatureSpec, Samples

NEG = -1e4


def samples_to_batch(
    samples: Samples, streams: tuple[str, ...], idx: np.ndarray | None = None, coupon_column: str = "offer"
) -> dict[str, torch.Tensor]:
    """Tensors for ``samples[idx]`` (all rows if None). Windows are cut to the longest row in the batch."""
    sel = slice(None) if idx is None else idx
    batch: dict[str, torch.Tensor] = {}
    for s in streams:
        x = samples.x[s][sel]
        length = samples.length[s][sel]
        t_max = max(int(length.max(initial=0)), 1)
        batch[s] = torch.from_numpy(np.ascontiguousarray(x[:, :t_max])).long()
        batch[f"{s}_len"] = torch.from_numpy(np.asarray(length, dtype=np.int64))
        batch[f"{s}_age"] = torch.from_numpy(log_age(samples.age_ms[s][sel][:, :t_max]))
    n = len(samples.user_id[sel])
    if samples.extra is not None and coupon_column in samples.extra.column_names:
        coupon = samples.extra.column(coupon_column).to_numpy().astype(np.float32)[sel]
    else:
        coupon = np.zeros(n, np.float32)
    batch["coupon"] = torch.from_numpy(np.ascontiguousarray(coupon))
    return batch


def id_dropout(ids: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """During training, replace each real id by "unknown" (1) with probability ``p``.

    Feature dropout: it keeps a model from memorising users through high-cardinality ids (hashed
    items) and teaches it what an unknown id means. A no-op in eval mode, so exports never see it.
    """
    if not training or p <= 0.0:
        return ids
    drop = (torch.rand(ids.shape) < p) & (ids > 1)
    return torch.where(drop, torch.ones_like(ids), ids)


def log_age(age_ms: np.ndarray) -> np.ndarray:
    """Event ages (ms before the decision) as the float32 model input log1p(seconds)."""
    return np.log1p(np.maximum(np.asarray(age_ms, dtype=np.float64), 0.0) / 1000.0).astype(np.float32)


def length_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, T) bool, True on real events."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


class StreamEmbedding(nn.Module):
    """One embedding per feature (sizes from the FeatureSpec), concatenated per event.

    Implemented as a single table with per-feature offsets (one Gather when exported).
    """

    def __init__(self, cardinalities: list[int], dim: int) -> None:
        super().__init__()
        offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
        self.register_buffer("offsets", torch.from_numpy(offsets), persistent=False)
        self.table = nn.Embedding(int(sum(cardinalities)), dim)
        self.n_features = len(cardinalities)
        self.dim = dim
        nn.init.normal_(self.table.weight, std=0.1)

    @property
    def out_dim(self) -> int:
        return self.n_features * self.dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, F*dim)
        e = self.table(ids + self.offsets)
        return e.reshape(ids.shape[0], ids.shape[1], self.out_dim)


def stream_embeddings(spec: FeatureSpec, streams: tuple[str, ...], dim: int) -> nn.ModuleDict:
    return nn.ModuleDict({s: StreamEmbedding(spec.cardinalities(s), dim) for s in streams})


class AttentionPool(nn.Module):
    """Masked additive attention pooling over time: (B, T, H), (B, T) -> (B, H); zeros if no events."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(torch.tanh(self.proj(h))).squeeze(-1)
        logits = logits + (~mask).to(h.dtype) * NEG
        w = torch.softmax(logits, dim=1) * mask.to(h.dtype)
        return torch.einsum("bt,bth->bh", w, h)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(h.dtype)
    return (h * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)


class CrossAttention(nn.Module):
    """Scaled dot-product attention from queries (B, Tq, H) to keys/values (B, Tk, H) with a key mask.

    A query row whose keys are all masked returns zeros.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.scale = hidden**-0.5

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bqh,bkh->bqk", self.q(query), self.k(keys)) * self.scale
        scores = scores + (~key_mask).to(query.dtype)[:, None, :] * NEG
        w = torch.softmax(scores, dim=-1) * key_mask.to(query.dtype)[:, None, :]
        return torch.einsum("bqk,bkh->bqh", w, self.v(keys))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def size_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())
