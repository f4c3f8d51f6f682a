"""DIPN (Taobao, KDD 2019 "Buying or Browsing?") in compact form.

Per stream (gesture / click / cloud, late fusion):

1. per-feature embeddings concatenated per event (``StreamEmbedding``);
2. one GRU per stream → step representations r_{s,t} (right padding, masks; no packed sequences);
3. **intra-view attention**: weights α_{s,t} = softmax_t(wᵀ tanh(W r_{s,t})) over the stream's own steps;
4. **inter-view attention** (transformer-like): each step attends to the steps of the *other* streams,
   u_{s,t} = Attn(q = r_{s,t}, k = v = r_{o≠s}); a gate β_{s,t} = σ(vᵀ tanh(V [r_{s,t}; u_{s,t}])) says
   how much the other views support step t;
5. **fusion by element-wise product** of the two attentions: step weights w = α ⊙ β, and the stream
   vector p_s = Σ_t w_{s,t} (r_{s,t} + u_{s,t});
6. the stream vectors are concatenated → MLP → one logit per task (real-time purchase, long-term
   purchase), trained jointly (multi-task).

Ablations (the paper's variants): ``attention=False`` (masked mean of r, no attention at all),
``intra=False`` (α uniform over real steps), ``inter=False`` (β = 1, u = 0), ``multitask=False`` (only
the first task's head), and any subset of streams via ``streams=``.

Options (registry defaults; ``dipn`` has ``embed_dim=8, hidden=32``, ``dipn-tiny`` 4 and 16):
``rnn`` (``"gru"`` or ``"lstm"``), ``id_dropout`` (0.1: during training a real id is read as unknown
with this probability), ``drop_features``, ``use_age``, ``coupon`` and ``time_bias`` (all described
below), and the ablations above.

Additions over the paper:

- Hashed item / category ids do not recur across users, and embedding them lets the model memorise
  its training users instead of learning what carries over to new ones. So by default their
  embeddings are dropped (``drop_features``, ``base.DEFAULT_DROP``) and each event instead gets "this
  item / category occurred earlier in the window" flags (re-views, cart → buy), which generalise.
- The pooled vector of each stream is joined by the GRU state at the stream's last real event.
- Each event carries its age at the decision time (``use_age``, the ``<stream>_age`` inputs).
- The coupon offered at the decision point (0 when none, e.g. Taobao) enters the MLP, as in IIDN
  (``coupon=False`` for the paper's input set).
- The inter-view attention knows when the other streams' events happened relative to the query step
  (``time_bias=True``, ``TimeCrossAttention``): a learned bias of the signed time gap in the scores,
  initialised to prefer nearby events, the attended gaps in the values, and a null key. Dot-product
  attention over GRU states cannot align events in time by itself (the age input is log-scaled, and
  seconds apart is a difference in its fourth digit); without these terms DIPN did not learn the
  simulator's "slow review scroll, then add_to_cart within seconds" pattern any better than without
  inter-view attention at all. The gap terms are near-hard steps (a 20 ms clipped ramp at each edge)
  over ages capped at 1 h (queries) and 2 h (keys), built from multiply, add, floor and clip only
  (``exact_exp``), so that the ONNX, CoreML and MNN exports agree with torch on x86 and ARM alike
  (see ``TimeCrossAttention``).

``forward(batch)`` returns one logit per task (``base`` describes the batch). The measured quality of
DIPN, its ablations and the baselines, with the commands that measure it: ``docs/models.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeintent.toolkit.models import register_model
from edgeintent.toolkit.models.signature import COUPON, DeclaresSignature, Signature, stream_inputs, task_outputs
from edgeintent.toolkit.models.base import (
    DEFAULT_DROP,
    AttentionPool,
    CrossAttention,
    TimeCrossAttention,
    event_seconds,
    id_dropout,
    length_mask,
    masked_mean,
    other_streams,
    stream_embeddings,
)


def repeat_flags(ids: torch.Tensor, mask: torch.Tensor, cols: list[int]) -> torch.Tensor:
    """(B, T, len(cols)) float: 1 where the event's id in that column occurred earlier in the window."""
    t = ids.shape[1]
    earlier = torch.tril(torch.ones(t, t, dtype=torch.bool, device=ids.device), diagonal=-1)  # [t, t'] t' < t
    valid = earlier[None] & mask[:, None, :] & mask[:, :, None]
    flags = []
    for j in cols:
        col = ids[:, :, j]
        same = (col[:, :, None] == col[:, None, :]) & valid
        flags.append(same.any(dim=2).to(torch.float32))
    return torch.stack(flags, dim=-1)


class _InterGate(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * hidden, hidden)
        self.score = nn.Linear(hidden, 1)

    def forward(self, r: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.score(torch.tanh(self.proj(torch.cat([r, u], dim=-1)))).squeeze(-1))


_OPTIONS = dict(attention=True, intra=True, inter=True, multitask=True, rnn="gru", id_dropout=0.1,
                drop_features=DEFAULT_DROP, use_age=True, coupon=True, time_bias=True)  # fmt: skip


@register_model("dipn-tiny", description="DIPN, embedding 4, hidden 16", embed_dim=4, hidden=16, **_OPTIONS)
@register_model("dipn", description="DIPN: GRU per stream, intra/inter-view attention", embed_dim=8, hidden=32, **_OPTIONS)
class DIPN(DeclaresSignature, nn.Module):
    def __init__(
        self,
        spec,
        streams: tuple[str, ...],
        tasks: tuple[str, ...],
        embed_dim: int,
        hidden: int,
        attention: bool = True,
        intra: bool = True,
        inter: bool = True,
        multitask: bool = True,
        rnn: str = "gru",
        id_dropout: float = 0.1,
        drop_features: tuple[str, ...] = DEFAULT_DROP,
        use_age: bool = True,
        coupon: bool = True,
        time_bias: bool = False,
    ) -> None:
        super().__init__()
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm', got {rnn!r}")
        self.streams = tuple(streams)
        self.tasks = tuple(tasks) if multitask else tuple(tasks[:1])
        self.hparams = dict(embed_dim=embed_dim, hidden=hidden, attention=attention, intra=intra, inter=inter,
                            multitask=multitask, rnn=rnn, id_dropout=id_dropout,
                            drop_features=tuple(drop_features), use_age=use_age, coupon=coupon,
                            time_bias=time_bias)  # fmt: skip
        self.features_per_event = {s: len(spec.features[s]) for s in self.streams}
        self.use_inter = attention and inter and len(self.streams) > 1
        self.use_intra = attention and intra
        self.embed = stream_embeddings(spec, self.streams, embed_dim, tuple(drop_features))
        # hashed ids (items, categories) rarely recur across users, so besides their embedding each event
        # gets "this id occurred earlier in the window" flags, which do generalise (re-views, cart → buy)
        self.repeat_cols = {s: [j for j, f in enumerate(spec.features[s]) if f.kind == "hash"] for s in self.streams}
        cell = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = nn.ModuleDict({
            s: cell(self.embed[s].out_dim + len(self.repeat_cols[s]) + int(use_age), hidden, batch_first=True)
            for s in self.streams
        })  # fmt: skip
        if self.use_intra:
            self.intra = nn.ModuleDict({s: AttentionPool(hidden) for s in self.streams})
        if self.use_inter:
            attn = TimeCrossAttention if time_bias else CrossAttention
            self.cross = nn.ModuleDict({s: attn(hidden) for s in self.streams})
            self.gate = nn.ModuleDict({s: _InterGate(hidden) for s in self.streams})
        # attention-pooled + last real step, per stream (+ the coupon): the width of ``encode``'s output
        self.encoded_width = 2 * hidden * len(self.streams) + int(coupon)
        self.build_head()

    def build_head(self) -> None:
        """The layers after the stream encoders (a model that reuses the encoders builds its own)."""
        hidden = self.hparams["hidden"]
        self.mlp = nn.Sequential(nn.Linear(self.encoded_width, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, 1) for t in self.tasks})

    def config(self) -> dict:
        return {"streams": list(self.streams), "tasks": list(self.tasks), **self.hparams}

    def signature(self) -> Signature:
        inputs = stream_inputs(self.streams, self.features_per_event, ages=self.hparams["use_age"])
        return Signature(tuple(inputs) + ((COUPON,) if self.hparams["coupon"] else ()), task_outputs(self.tasks))

    def shift_logit(self, task: str, delta: float) -> None:
        """Add ``delta`` to one task's logit (used for the prior correction after weighted training)."""
        with torch.no_grad():
            self.heads[task].bias += delta

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.mlp(self.encode(batch))
        return {t: self.heads[t](z).squeeze(-1) for t in self.tasks}

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The stream encoders' output (B, ``encoded_width``): per stream the attention-pooled steps and
        the last real step, then the coupon feature."""
        reps, masks = {}, {}
        for s in self.streams:
            ids = batch[s]
            mask = length_mask(batch[f"{s}_len"], ids.shape[1])
            ids = id_dropout(ids, self.hparams["id_dropout"], self.training)
            e = self.embed[s](ids)
            if self.repeat_cols[s]:
                e = torch.cat([e, repeat_flags(batch[s], mask, self.repeat_cols[s])], dim=-1)
            if self.hparams["use_age"]:
                e = torch.cat([e, (batch[f"{s}_age"] * mask.to(e.dtype)).unsqueeze(-1) / 10.0], dim=-1)
            r = self.rnn[s](e)[0]
            reps[s] = r * mask.unsqueeze(-1).to(r.dtype)
            masks[s] = mask
        pooled = []
        timed = self.use_inter and self.hparams["time_bias"]
        secs = {s: event_seconds(batch[f"{s}_age"]) for s in self.streams} if timed else None
        for s in self.streams:
            r, mask = reps[s], masks[s]
            if not self.hparams["attention"]:
                pooled.append(masked_mean(r, mask))
                continue
            m = mask.to(r.dtype)
            alpha = self.intra[s].weights(r, mask) if self.use_intra else m / m.sum(1, keepdim=True).clamp(min=1.0)
            if self.use_inter:
                keys, key_mask, key_sec = other_streams(s, reps, masks, secs)
                if timed:
                    u = self.cross[s](r, keys, key_mask, secs[s], key_sec)
                else:
                    u = self.cross[s](r, keys, key_mask)
                weights = alpha * self.gate[s](r, u)
                h = r + u
            else:
                weights, h = alpha, r
            pooled.append(torch.einsum("bt,bth->bh", weights, h))
        for s in self.streams:  # the GRU's state at the last real event (zeros for an empty stream)
            n = batch[f"{s}_len"]
            last = n - (n > 0).long()  # integer-only max(n - 1, 0): converters keep it an index
            pooled.append(reps[s][torch.arange(last.shape[0]), last])
        if self.hparams["coupon"]:  # the offer at the decision point (0 = none), as in the IIDN input
            pooled.append(torch.log1p(batch["coupon"].clamp(min=0.0) / 5.0).unsqueeze(-1))
        return torch.cat(pooled, dim=-1)

