"""IIDN (1688, CIKM 2020 "Spending Money Wisely"): stay intent first, then purchase intent given it.

Architecture (compact, phone-sized)::

    per stream s:  ids (B,T,F) ─► StreamEmbedding ─► LSTM layer 1 ─► LSTM layer 2 ─► …
                                                      │ AttentionPool   │ AttentionPool
    top layer of s ─► time-aware attention to the other streams' top layers ─► AttentionPool (``cross_time``)
    coupon (B,) ─► [embedding of the nearest amount, coupon / max(amounts)]
    static (B,S) ─► (optional, ``static_dim > 0``)
    concat(every pooled output of every stream, coupon, static) ─► BatchNorm ─► encoder FC (tanh) ─► z
    decoder, 2 steps of a recurrent cell with state (h, c) initialised to (z, 0):
        step 1: input [z, start token]          ─► h1 ─► stay logit S
        step 2: input [z, feedback(sigmoid(S))] ─► h2 ─► purchase logit P   (P conditioned on S)
    P += softplus(e(z)) · r(coupon)        (the elasticity term, ``coupon_response``; see below)

- The recurrent layers are separate single-layer ``nn.LSTM`` (or ``nn.GRU``) modules so that every
  layer's output sequence is pooled ("attention over every LSTM layer's output"). Inputs are right
  padded and never packed: a row's real positions do not see its padding, and the masked attention
  ignores the padded positions, so outputs do not depend on how far a batch is padded. A stream with
  no events pools to exact zeros.
- ``cross_time`` (default on; bundles written before it load without it): each stream's top-layer
  steps attend to the other streams' steps with DIPN's ``TimeCrossAttention`` (relative-time terms on
  the gap between the events, from the ``<stream>_age`` inputs), and the result is attention-pooled
  into the encoder input. An addition to the paper, for the same reason DIPN has it: on the simulator
  the purchase probability, and so each user's coupon uplift in probability, depends on how soon an
  add_to_cart click followed a slow review scroll, which per-stream LSTMs do not see; without it the
  coupon allocation on IIDN's predictions gets clearly fewer incremental purchases per unit cost
  (measured in ``docs/models.md``).
- The concatenated encoder input goes through ``BatchNorm1d`` (``batchnorm=True``, see the comment in
  ``__init__`` for why) before the encoder FC.
- The coupon amount is bucketed to the nearest of ``amounts`` (ties go to the smaller amount; an
  amount outside the list goes to the nearest end) with comparisons against the midpoints, plus the
  raw value scaled by the largest amount, so unseen amounts still move the output smoothly.
- ``coupon_response`` (default ``"monotone"``): besides the coupon input above, the purchase logit
  gets an elasticity term ``softplus(e(z)) · r(c)``: ``e`` a Linear on the encoder vector (how much this
  decision point responds to a coupon), ``r`` a non-negative, increasing, piecewise-linear curve
  through ``amounts`` with ``r(amounts[0]) = 0`` (learned slopes, flat beyond the largest amount).
  ``"input"`` is the paper's model (the coupon only as an input); ``"monotone-only"`` drops the coupon
  input, so P never falls as the amount grows and S does not see the coupon. Why: allocation needs
  the *difference* P(c) − P(0) per user, and through the input alone IIDN learned too flat and too
  uniform a response (its predicted uplift followed the true one only weakly). The elasticity term
  gives heterogeneity a direct path (measured in ``docs/models.md``).
- The decoder cell is written out with plain ``Linear`` layers and sigmoid/tanh (the LSTM or GRU
  equations, following ``rnn``), not ``nn.LSTMCell``/``nn.GRUCell``: torch traces ``nn.GRUCell`` to
  ``unsafe_chunk``, which coremltools cannot convert, and one Linear per gate needs no split at all.
- ``forward`` returns logits keyed by ``tasks``: ``tasks[0]`` is the stay task S, ``tasks[1]`` the
  purchase task P (e.g. ``("stay", "buy_rt")`` or ``("stay", "buy_long")``). The loss is per-task BCE,
  CE(S) + CE(P), applied by the trainer.

Options (registry defaults): ``embed_dim`` (8), ``hidden`` (32), ``layers`` (2), ``rnn`` (``"lstm"`` or
``"gru"``), ``amounts`` ((0, 5, 10, 20)), ``coupon_dim`` (4), ``static_dim`` (0), ``dropout`` (0.0),
``batchnorm`` (True), ``coupon_response`` (``"monotone"``), ``cross_time`` (True) and ``drop_features``
(``base.DEFAULT_DROP``, as in DIPN). The two-stage use (coupon allocation under a budget) lives in
``edgeintent.decide``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features import FeatureSpec
from edgeintent.toolkit.models import register_model
from edgeintent.toolkit.models.signature import (
    COUPON,
    DeclaresSignature,
    InputSpec,
    Signature,
    stream_inputs,
    task_outputs,
)
from edgeintent.toolkit.models.base import (
    DEFAULT_DROP,
    AttentionPool,
    TimeCrossAttention,
    event_seconds,
    length_mask,
    other_streams,
    stream_embeddings,
)

RNNS = ("lstm", "gru")
COUPON_RESPONSES = ("input", "monotone", "monotone-only")


class DecoderCell(nn.Module):
    """One step of an LSTM or GRU cell from plain Linear layers (one per gate; export-friendly)."""

    def __init__(self, in_dim: int, hidden: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        both = in_dim + hidden
        if kind == "lstm":
            self.i = nn.Linear(both, hidden)
            self.f = nn.Linear(both, hidden)
            self.g = nn.Linear(both, hidden)
            self.o = nn.Linear(both, hidden)
            with torch.no_grad():  # forget-gate bias 1, the usual LSTM initialisation
                self.f.bias.fill_(1.0)
        else:
            self.r = nn.Linear(both, hidden)
            self.z = nn.Linear(both, hidden)
            self.n_x = nn.Linear(in_dim, hidden)
            self.n_h = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xh = torch.cat([x, h], dim=1)
        if self.kind == "lstm":
            i = torch.sigmoid(self.i(xh))
            f = torch.sigmoid(self.f(xh))
            g = torch.tanh(self.g(xh))
            o = torch.sigmoid(self.o(xh))
            c = f * c + i * g
            return o * torch.tanh(c), c
        r = torch.sigmoid(self.r(xh))
        z = torch.sigmoid(self.z(xh))
        n = torch.tanh(self.n_x(x) + r * self.n_h(h))
        return (1.0 - z) * n + z * h, c  # GRU has no cell state; c passes through unchanged


@register_model(
    "iidn",
    kind="torch",
    tasks=("stay", "buy_rt"),
    description="IIDN: 2-layer LSTMs, coupon, stay → purchase decoder",
    embed_dim=8,
    hidden=32,
    layers=2,
    rnn="lstm",
    amounts=(0.0, 5.0, 10.0, 20.0),
    coupon_dim=4,
    static_dim=0,
    dropout=0.0,
    batchnorm=True,
    coupon_response="monotone",
    cross_time=True,
    drop_features=DEFAULT_DROP,
    # bundles written before an option existed had the paper's model there
    legacy={"coupon_response": "input", "cross_time": False},
)
class IIDN(DeclaresSignature, nn.Module):
    """Intent identification network; see the module docstring for the data flow."""

    def __init__(
        self,
        spec: FeatureSpec,
        streams: tuple[str, ...],
        tasks: tuple[str, ...] = ("stay", "buy_rt"),
        *,
        embed_dim: int = 8,
        hidden: int = 32,
        layers: int = 2,
        rnn: str = "lstm",
        amounts: tuple[float, ...] | list[float] = (0.0, 5.0, 10.0, 20.0),
        coupon_dim: int = 4,
        static_dim: int = 0,
        dropout: float = 0.0,
        batchnorm: bool = True,
        coupon_response: str = "monotone",
        cross_time: bool = True,
        drop_features: tuple[str, ...] = DEFAULT_DROP,
    ) -> None:
        super().__init__()
        streams, tasks = tuple(streams), tuple(tasks)
        amounts = tuple(float(a) for a in amounts)
        if not streams:
            raise ConfigError("iidn needs at least one stream")
        missing = [s for s in streams if s not in spec.streams]
        if missing:
            raise ConfigError(f"iidn: the FeatureSpec has no stream {missing[0]!r} (it has {', '.join(spec.streams)})")
        if len(tasks) != 2 or tasks[0] == tasks[1]:
            raise ConfigError(f"iidn needs exactly two distinct tasks (stay task first, then purchase), got {list(tasks)}")
        if rnn not in RNNS:
            raise ConfigError(f"iidn: rnn must be one of {', '.join(RNNS)}, got {rnn!r}")
        for name, v in (("embed_dim", embed_dim), ("hidden", hidden), ("layers", layers), ("coupon_dim", coupon_dim)):
            if int(v) != v or v < 1:
                raise ConfigError(f"iidn: {name} must be a positive integer, got {v!r}")
        if int(static_dim) != static_dim or static_dim < 0:
            raise ConfigError(f"iidn: static_dim must be a non-negative integer, got {static_dim!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"iidn: dropout must be in [0, 1), got {dropout!r}")
        if coupon_response not in COUPON_RESPONSES:
            raise ConfigError(f"iidn: coupon_response must be one of {', '.join(COUPON_RESPONSES)}, got {coupon_response!r}")
        if not amounts or any(b <= a for a, b in zip(amounts, amounts[1:])) or amounts[0] < 0:
            raise ConfigError(f"iidn: amounts must be non-negative and strictly increasing, got {list(amounts)}")

        self.streams, self.tasks = streams, tasks
        self.features_per_event = {s: len(spec.features[s]) for s in streams}
        self.hparams = dict(
            embed_dim=int(embed_dim), hidden=int(hidden), layers=int(layers), rnn=rnn, amounts=list(amounts),
            coupon_dim=int(coupon_dim), static_dim=int(static_dim), dropout=float(dropout),
            batchnorm=bool(batchnorm), coupon_response=coupon_response, cross_time=bool(cross_time),
            drop_features=list(drop_features),
        )
        self.use_cross = bool(cross_time) and len(streams) > 1
        rnn_cls = nn.LSTM if rnn == "lstm" else nn.GRU

        self.embed = stream_embeddings(spec, streams, embed_dim, tuple(drop_features))
        self.rnns = nn.ModuleDict()
        self.attn = nn.ModuleDict()
        for s in streams:
            dims = [self.embed[s].out_dim] + [hidden] * (layers - 1)
            self.rnns[s] = nn.ModuleList(rnn_cls(d, hidden, num_layers=1, batch_first=True) for d in dims)
            self.attn[s] = nn.ModuleList(AttentionPool(hidden) for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        if self.use_cross:  # top layer's steps attend to the other streams' steps, knowing when they happened
            self.cross = nn.ModuleDict({s: TimeCrossAttention(hidden) for s in streams})
            self.cross_pool = nn.ModuleDict({s: AttentionPool(hidden) for s in streams})

        mids = [(a + b) / 2 for a, b in zip(amounts, amounts[1:])]
        self.register_buffer("coupon_mids", torch.tensor(mids, dtype=torch.float32), persistent=False)
        self.coupon_scale = amounts[-1] if amounts[-1] > 0 else 1.0
        self.coupon_embed = nn.Embedding(len(amounts), coupon_dim)
        nn.init.normal_(self.coupon_embed.weight, std=0.1)

        enc_in = len(streams) * (layers + int(self.use_cross)) * hidden + static_dim
        enc_in += 0 if coupon_response == "monotone-only" else coupon_dim + 1
        # At initialisation the pooled sequence summaries are mostly a component shared by every row (their
        # mean is several times their spread across rows). Without centring across rows, Adam grows that
        # shared component until the encoder tanh (or, with ReLU, the decoder gates) saturates and the
        # model sticks at the base rates (it ranks no better than chance; a per-row LayerNorm or a
        # data-initialised ActNorm did not help). BatchNorm fixes it; in eval mode it is an affine map
        # (exporters and runtimes fold it into the encoder's Linear). Train in batches of more than one
        # row and evaluate in eval mode.
        self.enc_norm = nn.BatchNorm1d(enc_in) if batchnorm else nn.Identity()
        self.encoder = nn.Linear(enc_in, hidden)
        self.start = nn.Parameter(torch.zeros(embed_dim))  # decoder's "go" token
        self.feedback = nn.Linear(1, embed_dim)  # embeds sigmoid(S) for step 2
        self.cell = DecoderCell(hidden + embed_dim, hidden, rnn)
        self.head_s = nn.Linear(hidden, 1)
        self.head_p = nn.Linear(hidden, 1)
        if coupon_response != "input":
            # r(c): piecewise linear through the listed amounts, r(amounts[0]) = 0, non-negative slopes
            self.register_buffer("coupon_knots", torch.tensor(amounts, dtype=torch.float32), persistent=False)
            self.response_steps = nn.Parameter(torch.zeros(len(amounts) - 1))
            self.head_e = nn.Linear(hidden, 1)  # the decision point's elasticity, softplus(head_e(z))

    def config(self) -> dict:
        return {"name": "iidn", "streams": list(self.streams), "tasks": list(self.tasks), **self.hparams}

    def signature(self) -> Signature:
        """Event ages only with ``cross_time``; the coupon always; static features when ``static_dim``."""
        inputs = stream_inputs(self.streams, self.features_per_event, ages=self.use_cross) + [COUPON]
        if self.hparams["static_dim"]:
            inputs.append(InputSpec("static", "float32", ("batch", int(self.hparams["static_dim"]))))
        return Signature(tuple(inputs), task_outputs(self.tasks))

    def coupon_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) float32 coupon offered per row; a batch without a ``coupon`` column means none."""
        if "coupon" in batch:
            return batch["coupon"].to(torch.float32)
        return torch.zeros(batch[self.streams[0]].shape[0], dtype=torch.float32)

    def coupon_features(self, coupon: torch.Tensor) -> torch.Tensor:
        """(B,) amounts -> (B, coupon_dim + 1): embedding of the nearest listed amount and the scaled value."""
        bucket = (coupon[:, None] > self.coupon_mids[None, :]).long().sum(dim=1)
        return torch.cat([self.coupon_embed(bucket), (coupon / self.coupon_scale)[:, None]], dim=1)

    def stream_parts(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The encoder's inputs that read the event streams only (every pooled RNN output and cross-time
        summary): the costly part, the same under every coupon amount (``decide``'s per-amount passes share it)."""
        parts, tops, masks = [], {}, {}
        for s in self.streams:
            ids = batch[s]
            mask = length_mask(batch[f"{s}_len"], ids.shape[1])
            h = self.embed[s](ids)
            for rnn, pool in zip(self.rnns[s], self.attn[s]):
                h, _ = rnn(self.drop(h))
                parts.append(pool(h, mask))
            if self.use_cross:
                tops[s], masks[s] = h * mask.unsqueeze(-1).to(h.dtype), mask
        if self.use_cross:
            secs = {s: event_seconds(batch[f"{s}_age"]) for s in self.streams}
            for s in self.streams:
                keys, key_mask, key_sec = other_streams(s, tops, masks, secs)
                u = self.cross[s](tops[s], keys, key_mask, secs[s], key_sec)
                parts.append(self.cross_pool[s](tops[s] + u, masks[s]))
        return parts

    def encode(self, batch: dict[str, torch.Tensor], parts: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The encoder vector z (B, hidden); ``parts``: :meth:`stream_parts` of this batch, if computed already."""
        parts = list(self.stream_parts(batch) if parts is None else parts)
        if self.hparams["coupon_response"] != "monotone-only":
            parts.append(self.coupon_features(self.coupon_of(batch)))
        if self.hparams["static_dim"]:
            if "static" not in batch:
                raise KeyError(f"iidn was built with static_dim={self.hparams['static_dim']}: the batch needs 'static' (B, S)")
            parts.append(batch["static"].to(torch.float32))
        return torch.tanh(self.encoder(self.drop(self.enc_norm(torch.cat(parts, dim=1)))))

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two decoder steps: stay logit S, then purchase logit P fed with sigmoid(S)."""
        h, c = z, torch.zeros_like(z)
        go = self.start.unsqueeze(0).expand(z.shape[0], -1)
        h, c = self.cell(torch.cat([z, go], dim=1), h, c)
        s_logit = self.head_s(h).squeeze(-1)
        fb = self.feedback(torch.sigmoid(s_logit).unsqueeze(-1))
        h, c = self.cell(torch.cat([z, fb], dim=1), h, c)
        p_logit = self.head_p(h).squeeze(-1)
        return s_logit, p_logit

    def coupon_curve(self, coupon: torch.Tensor) -> torch.Tensor:
        """(B,) amounts -> (B,) r(c) >= 0, increasing, linear between listed amounts, flat beyond them."""
        k = self.coupon_knots
        frac = ((coupon[:, None] - k[None, :-1]) / (k[1:] - k[:-1])[None, :]).clamp(0.0, 1.0)
        return (frac * nn.functional.softplus(self.response_steps)[None, :]).sum(dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.forward_with_parts(batch, None)

    def forward_with_parts(self, batch: dict[str, torch.Tensor], parts: list[torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """:meth:`forward` with the batch's :meth:`stream_parts` given (None: computed here)."""
        z = self.encode(batch, parts)
        s_logit, p_logit = self.decode(z)
        if self.hparams["coupon_response"] != "input":
            elastic = nn.functional.softplus(self.head_e(z)).squeeze(-1)
            p_logit = p_logit + elastic * self.coupon_curve(self.coupon_of(batch))
        return {self.tasks[0]: s_logit, self.tasks[1]: p_logit}
