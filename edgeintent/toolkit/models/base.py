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

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features import FeatureSpec, Samples

NEG = -1e4


def batch_width(samples: Samples, s: str, sel, widths: dict[str, int] | None = None) -> int:
    """Steps of stream ``s`` in a batch: ``widths[s]`` if given (e.g. the full window, as a phone sends
    it), else the longest row of the selection (at least 1)."""
    if widths and s in widths:
        return int(widths[s])
    return max(int(samples.length[s][sel].max(initial=0)), 1)


def samples_to_batch(
    samples: Samples,
    streams: tuple[str, ...],
    idx: np.ndarray | None = None,
    coupon_column: str = "offer",
    widths: dict[str, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Tensors for ``samples[idx]`` (all rows if None). Windows are cut to the longest row in the batch
    unless ``widths`` fixes a stream's width (at most the stored window)."""
    sel = slice(None) if idx is None else idx
    batch: dict[str, torch.Tensor] = {}
    for s in streams:
        x = samples.x[s][sel]
        length = samples.length[s][sel]
        t_max = batch_width(samples, s, sel, widths)
        batch[s] = torch.from_numpy(np.ascontiguousarray(x[:, :t_max])).long()
        batch[f"{s}_len"] = torch.from_numpy(np.asarray(length, dtype=np.int64))
        batch[f"{s}_age"] = torch.from_numpy(log_age(samples.age_ms[s][sel][:, :t_max]))
    batch["coupon"] = torch.from_numpy(coupon_values(samples, sel, coupon_column))
    return batch


def coupon_values(samples: Samples, sel=slice(None), column: str = "offer") -> np.ndarray:
    """(n,) float32 coupon offered at each decision point (0 where the source logs none)."""
    if samples.extra is not None and column in samples.extra.column_names:
        return np.ascontiguousarray(samples.extra.column(column).to_numpy().astype(np.float32)[sel])
    return np.zeros(len(samples.user_id[sel]), np.float32)


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


#: Hashed ids (items, categories) rarely recur across users: embedding them lets a model memorise its
#: training users (Taobao, DIPN: validation AUC 0.47–0.54 while training AUC rose to 0.81). Models
#: drop these embeddings by default and read the ids as "unknown"; DIPN keeps "seen earlier" flags.
DEFAULT_DROP = ("cloud.item", "cloud.category")


class StreamEmbedding(nn.Module):
    """One embedding per feature (sizes from the FeatureSpec), concatenated per event.

    Implemented as a single table with per-feature offsets (one Gather when exported). Features listed
    in ``dropped`` (indices) keep only their padding / unknown rows: their ids are read as unknown.
    """

    def __init__(self, cardinalities: list[int], dim: int, dropped: tuple[int, ...] = ()) -> None:
        super().__init__()
        cardinalities = [2 if j in dropped else c for j, c in enumerate(cardinalities)]
        keep = torch.tensor([0 if j in dropped else 1 for j in range(len(cardinalities))], dtype=torch.long)
        self.register_buffer("keep", keep, persistent=False)
        self.any_dropped = bool(dropped)
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
        if self.any_dropped:
            ids = ids * self.keep + (1 - self.keep) * (ids > 0).long()
        e = self.table(ids + self.offsets)
        return e.reshape(ids.shape[0], ids.shape[1], self.out_dim)


def stream_embeddings(
    spec: FeatureSpec, streams: tuple[str, ...], dim: int, drop: tuple[str, ...] = ()
) -> nn.ModuleDict:
    """Embeddings per stream; ``drop`` names features as ``stream.feature`` (e.g. ``cloud.item``)."""
    known = {f"{s}.{f.name}" for s in spec.streams for f in spec.features[s]}
    unknown = [d for d in drop if d not in known and d.split(".")[0] in spec.streams]
    if unknown:
        raise ConfigError(f"drop_features: no feature {unknown[0]!r} (features are named like cloud.item)")
    return nn.ModuleDict({
        s: StreamEmbedding(spec.cardinalities(s), dim,
                           tuple(j for j, f in enumerate(spec.features[s]) if f"{s}.{f.name}" in drop))
        for s in streams
    })  # fmt: skip


class AttentionPool(nn.Module):
    """Masked additive attention pooling over time: (B, T, H), (B, T) -> (B, H); zeros if no events."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def weights(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) attention weights: softmax over real steps, exact zeros on padding."""
        logits = self.score(torch.tanh(self.proj(h))).squeeze(-1)
        logits = logits + (~mask).to(h.dtype) * NEG
        return torch.softmax(logits, dim=1) * mask.to(h.dtype)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bt,bth->bh", self.weights(h, mask), h)


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
