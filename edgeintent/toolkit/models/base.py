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

import math
from contextvars import ContextVar

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


#: In data-parallel training, ``(first, end, n)``: this process computes rows ``first:end`` of a batch of
#: ``n`` rows. :func:`id_dropout` then draws the whole batch's noise and keeps those rows, so the masks (and
#: the weights) do not depend on the number of replicas; ``None`` (one process) draws for the rows it has.
BATCH_ROWS: ContextVar[tuple[int, int, int] | None] = ContextVar("edgeintent_batch_rows", default=None)


def id_dropout(ids: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """During training, replace each real id by "unknown" (1) with probability ``p``.

    Feature dropout: it keeps a model from memorising users through high-cardinality ids (hashed
    items) and teaches it what an unknown id means. A no-op in eval mode, so exports never see it.
    """
    if not training or p <= 0.0:
        return ids
    rows = BATCH_ROWS.get()
    if rows is None:
        noise = torch.rand(ids.shape)
    else:  # one replica of data-parallel training: the whole batch's draw, this replica's rows
        noise = torch.rand((rows[2], *ids.shape[1:]))[rows[0] : rows[1]]
    drop = (noise < p) & (ids > 1)
    return torch.where(drop, torch.ones_like(ids), ids)


def log_age(age_ms: np.ndarray) -> np.ndarray:
    """Event ages (ms before the decision) as the float32 model input log1p(seconds)."""
    return np.log1p(np.maximum(np.asarray(age_ms, dtype=np.float64), 0.0) / 1000.0).astype(np.float32)


def length_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, T) bool, True on real events."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


#: Hashed ids (items, categories) rarely recur across users: embedding them lets a model memorise its
#: training users rather than learn what carries over to new ones (docs/models.md). Models drop these
#: embeddings by default and read the ids as "unknown"; DIPN keeps "seen earlier" flags.
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


#: Edges (seconds) of the inter-view attention's relative-time bias, on the signed gap "key event time −
#: query event time" (negative: the key event came first).
#: The relative-time terms see query ages up to 1 h and key ages up to 2 h (log1p seconds); older events
#: sit at the cap. The caps differ so that two old events (earlier sessions) are an hour apart for these
#: terms ("far"), not at the same instant, and keep exp finite in fp16 (it overflows past 11).
AGE_CAP = float(math.log1p(3600.0))
KEY_AGE_CAP = float(math.log1p(7200.0))
#: Width (s) of the indicators' linear ramp around each edge: near-hard steps without comparisons.
STEP_WIDTH_S = 0.02
TIME_EDGES_S = (-600.0, -120.0, -30.0, -10.0, -4.0, -2.0, -1.0, -0.3, 0.3, 1.0, 2.0, 4.0, 10.0, 30.0, 120.0, 600.0)


#: exp(r) on [0, ln 2) by its Taylor polynomial of degree 9 (truncation error < 1e-8 relative), Horner order
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(9, -1, -1))


def exact_exp(a: torch.Tensor) -> torch.Tensor:
    """exp(a) for 0 ≤ a < 16 ln 2, to fp32 rounding, from multiply, add, floor and clip only.

    ``a = n ln 2 + r``: exp(r) by a polynomial; 2^n from the four bits of n, each peeled off with a
    clip (exact for integer n). No Exp node: runtimes' exp kernels are not all this accurate (MNN's
    aarch64 exp errs by far more than a 20 ms ramp at a 2-hour age; ``benchmarks/arm_kernels.py``
    measures it, docs/models.md has the figures), and TimeCrossAttention places the gaps between events
    on 20 ms ramps. No table lookup either:
    quantizers treat a Gather's table as weights and would round the powers of two. Multiply and add
    are correctly rounded everywhere.
    """
    n = torch.floor(a * (1.0 / math.log(2.0)))
    r = a - n * math.log(2.0)
    p = r * _EXP_TAYLOR[0] + _EXP_TAYLOR[1]
    for c in _EXP_TAYLOR[2:]:
        p = p * r + c
    for bit in (8.0, 4.0, 2.0):  # p *= 2^bit if n ≥ bit, then n -= bit
        b = (n - (bit - 1.0)).clamp(0.0, 1.0)
        p = p * (b * (2.0**bit - 1.0) + 1.0)
        n = n - b * bit
    return p * (n + 1.0)  # the last bit: n is 0 or 1 here


def event_seconds(age: torch.Tensor) -> torch.Tensor:
    """1 + seconds before the decision, from a ``<stream>_age`` input (log1p seconds) capped at
    ``KEY_AGE_CAP`` (2 h), for TimeCrossAttention (exp, not expm1: the 1s cancel in a gap). Models
    compute it once per stream: the same seconds serve as that stream's queries and as keys in every
    other stream's attention."""
    return exact_exp(age.clamp(0.0, KEY_AGE_CAP))


#: ``AGE_CAP`` in event_seconds' units (exact_exp at the cap): capping seconds here equals capping ages
QUERY_SECONDS_CAP = float(exact_exp(torch.tensor(AGE_CAP)))


class TimeCrossAttention(nn.Module):
    """Inter-view attention that knows *when* the other streams' events happened relative to the query's.

    Scaled dot-product attention from queries (B, Tq, H) to keys / values (B, Tk, H), plus relative-time
    terms in the scores and the values (Shaw et al. 2018's relative positions, on time): with the signed
    gap g = key event time − query event time in seconds (from :func:`event_seconds` of the age inputs;
    query ages capped at ``AGE_CAP`` = 1 h, key ages at ``KEY_AGE_CAP`` = 2 h) and its
    near-hard indicators I_j = clip((g − edge_j) / 20 ms + 1/2, 0, 1) (``TIME_EDGES_S``),

    - score += Σ_j b_j I_j (a learned piecewise-constant bias, initialised to prefer nearby events),
    - value += W_t I (so the output says how far in time the attended events were),

    and a learned null key with zero value, so that a query with nothing relevant around it can attend
    to nothing. Only multiply, add, floor, clip and matmuls (seconds come from :func:`exact_exp`, not
    a runtime's exp kernel; no comparisons: a gap within float error of an edge would flip between
    runtimes); a row with every key masked returns zeros.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.null_key = nn.Parameter(torch.zeros(hidden))
        self.register_buffer("edges", torch.tensor(TIME_EDGES_S), persistent=False)
        # initialised to a locality prior, bias(g) = −log1p(|g|) at the bucket centres: attend to what the
        # user did around the same time in the other streams (learned from there)
        e = torch.tensor(TIME_EDGES_S, dtype=torch.float64)
        mids = torch.cat([e[:1] * 2, (e[1:] + e[:-1]) / 2, e[-1:] * 2])
        level = -torch.log1p(mids.abs())
        self.time_score = nn.Parameter((level[1:] - level[:-1]).to(torch.float32))
        self.time_value = nn.Linear(len(TIME_EDGES_S), hidden, bias=False)
        self.scale = hidden**-0.5

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor, sec_q: torch.Tensor, sec_k: torch.Tensor
    ) -> torch.Tensor:
        # sec_q / sec_k: event_seconds of the queries' and keys' ages. Queries are capped at 1 h, keys at 2 h
        # (see ``KEY_AGE_CAP``): the caps keep fp16 finite and fp32 exact to ~1 ms, and two events of earlier
        # sessions come out an hour apart, not simultaneous
        sec_q = sec_q.clamp(max=QUERY_SECONDS_CAP)
        gap = sec_q[:, :, None] - sec_k[:, None, :]  # (B, Tq, Tk) key − query time, s
        # near-hard indicators I_j = clip((gap − edge_j) / 20 ms + 1/2, 0, 1): a step with a 20 ms linear ramp.
        # Clip, not a comparison: a gap within float error of an edge moves the output by a fraction of the
        # ramp instead of flipping a whole indicator between runtimes, and MNN 3.6 evaluates comparisons
        # against broadcast negative constants wrongly
        ind = ((gap.unsqueeze(-1) - self.edges) * (1.0 / STEP_WIDTH_S) + 0.5).clamp(0.0, 1.0)  # (B, Tq, Tk, J)
        q = self.q(query)
        scores = torch.einsum("bqh,bkh->bqk", q, self.k(keys)) * self.scale + (ind * self.time_score).sum(-1)
        scores = scores + (~key_mask).to(query.dtype)[:, None, :] * NEG
        null = (q * self.null_key).sum(-1, keepdim=True) * self.scale  # (B, Tq, 1); no matrix @ vector (CoreML)
        w = torch.softmax(torch.cat([null, scores], dim=-1), dim=-1)[..., 1:] * key_mask.to(query.dtype)[:, None, :]
        u = torch.einsum("bqk,bkh->bqh", w, self.v(keys))
        return u + self.time_value(torch.einsum("bqk,bqkj->bqj", w, ind))


def other_streams(
    s: str, reps: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], secs: dict[str, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Keys for stream ``s``'s cross-stream attention: every other stream's steps (in ``reps`` order)
    concatenated along time, their mask and (with ``secs``, :func:`event_seconds` per stream) their seconds."""
    others = [o for o in reps if o != s]
    keys = torch.cat([reps[o] for o in others], dim=1)
    key_mask = torch.cat([masks[o] for o in others], dim=1)
    key_sec = torch.cat([secs[o] for o in others], dim=1) if secs is not None else None
    return keys, key_mask, key_sec


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def size_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())
