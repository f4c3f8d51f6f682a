"""``rnn``: the papers' RNN+DNN baseline, one GRU over the events of every stream merged in time order.

ONE GRU runs over the events of all the model's streams **merged in time order**; the masked mean of
its outputs plus its output at the last real step go to an MLP head per task (real-time purchase,
long-term purchase).

- Each stream's events are embedded (``StreamEmbedding``) and projected by a per-stream Linear to the
  common width ``hidden`` (the projection's bias doubles as a stream indicator).
- The merge order is computed in numpy from ``Samples.age_ms`` (age = t − ts, larger = older) and
  travels in the batch, so the exported graph needs only a Gather: ``batch["merge_idx"]`` (B, T_total)
  int64 indexes the concatenation along time of the streams' padded windows (stream order as in
  ``model.streams``, each stream cut to its batch width exactly like ``samples_to_batch`` does),
  oldest event first, real events first, padding last; ``batch["merge_len"]`` (B,) is the number of
  real events. Ties in age keep stream order, then window order (a stable sort).
- ``model.prepare_batch(samples, idx)`` builds a batch with these keys (``add_merge_order`` adds them
  to a batch from ``samples_to_batch``). Right padding and masks, never packed sequences; a row with no
  event at all pools to exact zeros, so its logits are the heads' biases (finite).
- Options: ``embed_dim`` (8), ``hidden`` (32), ``coupon`` (True: ``log1p(coupon / 5)`` joins the pooled
  vector, as in DIPN) and ``drop_features`` (``base.DEFAULT_DROP``, as in DIPN), so that a comparison
  with DIPN is between architectures, not input sets.

How it compares with DIPN and the GBDT baseline, and the command that measures it: ``docs/models.md``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features import FeatureSpec, Samples
from edgeintent.toolkit.models import register_model
from edgeintent.toolkit.models.signature import COUPON, MERGE, DeclaresSignature, Signature, stream_inputs, task_outputs
from edgeintent.toolkit.models.base import (
    DEFAULT_DROP,
    length_mask,
    masked_mean,
    batch_width,
    samples_to_batch,
    stream_embeddings,
)


def merge_order(
    samples: Samples, idx: np.ndarray | None, streams: tuple[str, ...], widths: dict[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(merge_idx (n, T_total) int64, merge_len (n,) int64) for ``samples[idx]``.

    Widths per stream follow ``base.batch_width`` (as in ``samples_to_batch``);
    ``merge_idx[i]`` lists positions in the concatenated windows, oldest real event first, then the
    padding positions in concatenation order.
    """
    sel = slice(None) if idx is None else idx
    ages, reals = [], []
    for s in streams:
        length = np.asarray(samples.length[s][sel], dtype=np.int64)
        width = batch_width(samples, s, sel, widths)
        age = np.asarray(samples.age_ms[s][sel], dtype=np.int64)
        if age.shape[1] < width:  # windows shorter than the longest row cannot happen, but be safe
            age = np.pad(age, ((0, 0), (0, width - age.shape[1])))
        ages.append(age[:, :width])
        reals.append(np.arange(width)[None, :] < length[:, None])
    age = np.concatenate(ages, axis=1)
    real = np.concatenate(reals, axis=1)
    # oldest first = largest age first; padding after every real event
    key = np.where(real, -age, np.iinfo(np.int64).max)
    merge_idx = np.argsort(key, axis=1, kind="stable").astype(np.int64)
    return merge_idx, real.sum(axis=1).astype(np.int64)


def add_merge_order(
    batch: dict[str, torch.Tensor],
    samples: Samples,
    idx: np.ndarray | None,
    streams: tuple[str, ...],
    widths: dict[str, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Add ``merge_idx`` / ``merge_len`` (see ``merge_order``) to a batch from ``samples_to_batch``."""
    merge_idx, merge_len = merge_order(samples, idx, streams, widths)
    width = sum(int(batch[s].shape[1]) for s in streams)
    if merge_idx.shape[1] != width:  # pragma: no cover - both follow the same width rule
        raise ValueError(f"merge order covers {merge_idx.shape[1]} steps but the batch has {width}")
    batch["merge_idx"] = torch.from_numpy(np.ascontiguousarray(merge_idx))
    batch["merge_len"] = torch.from_numpy(merge_len)
    return batch


@register_model(
    "rnn", kind="torch", tasks=("buy_rt", "buy_long"),
    description="baseline: one GRU over time-merged events + MLP",
    embed_dim=8, hidden=32, coupon=True, drop_features=DEFAULT_DROP,
)  # fmt: skip
class RNNBaseline(DeclaresSignature, nn.Module):
    """One GRU over every event of every stream, in time order (the papers' RNN+DNN baseline).

    ``coupon=True`` (default, as in DIPN and GBDT here) also feeds ``log1p(coupon / 5)`` to the heads;
    hashed item / category embeddings are dropped by default, as in DIPN (``base.DEFAULT_DROP``), so
    the comparison is between architectures, not input sets.
    """

    def __init__(
        self, spec: FeatureSpec, streams: tuple[str, ...], tasks: tuple[str, ...], embed_dim: int = 8,
        hidden: int = 32, coupon: bool = True, drop_features: tuple[str, ...] = DEFAULT_DROP,
    ) -> None:  # fmt: skip
        super().__init__()
        if embed_dim < 1 or hidden < 1:
            raise ConfigError(f"rnn: embed_dim and hidden must be positive, got {embed_dim} and {hidden}")
        self.streams = tuple(streams)
        self.tasks = tuple(tasks)
        self.hparams = {"embed_dim": int(embed_dim), "hidden": int(hidden), "coupon": bool(coupon),
                        "drop_features": list(drop_features)}  # fmt: skip
        self.features_per_event = {s: len(spec.features[s]) for s in self.streams}
        self.embed = stream_embeddings(spec, self.streams, embed_dim, tuple(drop_features))
        self.proj = nn.ModuleDict({s: nn.Linear(self.embed[s].out_dim, hidden) for s in self.streams})
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        width = 2 * hidden + (1 if coupon else 0)
        self.heads = nn.ModuleDict(
            {t: nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1)) for t in self.tasks}
        )

    def config(self) -> dict:
        name = getattr(self, "registry_name", "rnn")
        return {"name": name, "streams": list(self.streams), "tasks": list(self.tasks), **self.hparams}

    def shift_logit(self, task: str, delta: float) -> None:
        """Add ``delta`` to one task's logit (the trainer's prior correction after weighted training)."""
        with torch.no_grad():
            self.heads[task][-1].bias += delta

    def signature(self) -> Signature:
        """Ids and lengths per stream (event ages are not read), the coupon, and the time-merge order."""
        inputs = stream_inputs(self.streams, self.features_per_event, ages=False)
        return Signature(tuple(inputs) + ((COUPON,) if self.hparams["coupon"] else ()) + MERGE, task_outputs(self.tasks))

    def prepare_batch(
        self, samples: Samples, idx: np.ndarray | None = None, widths: dict[str, int] | None = None
    ) -> dict[str, torch.Tensor]:
        batch = samples_to_batch(samples, self.streams, idx, widths=widths)
        return add_merge_order(batch, samples, idx, self.streams, widths)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "merge_idx" not in batch:
            raise KeyError("the rnn baseline needs batch['merge_idx'] and ['merge_len']: use model.prepare_batch")
        steps = []
        for s in self.streams:
            ids = batch[s]
            mask = length_mask(batch[f"{s}_len"], ids.shape[1]).unsqueeze(-1)
            steps.append(self.proj[s](self.embed[s](ids)) * mask.to(torch.float32))
        x = torch.cat(steps, dim=1)  # (B, T_total, H), streams concatenated
        merge_idx = batch["merge_idx"]
        x = torch.gather(x, 1, merge_idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        merge_len = batch["merge_len"]
        mask = length_mask(merge_len, x.shape[1])
        h = self.gru(x)[0]
        mean = masked_mean(h, mask)
        last_pos = merge_len - (merge_len > 0).long()
        last = h[torch.arange(h.shape[0]), last_pos]
        last = last * (merge_len > 0).to(h.dtype).unsqueeze(-1)
        parts = [mean, last]
        if self.hparams["coupon"]:
            coupon = batch.get("coupon")
            if coupon is None:
                coupon = torch.zeros(h.shape[0], dtype=h.dtype)
            parts.append(torch.log1p(coupon.to(h.dtype).clamp(min=0.0) / 5.0).unsqueeze(-1))
        z = torch.cat(parts, dim=-1)
        return {t: self.heads[t](z).squeeze(-1) for t in self.tasks}
