"""The on-device scorer: (profile, tags, context, candidate ids) → fused score, as a small torch module.

It declares its signature like every model (``toolkit/models/signature.py``), so the house exporters
(onnx, coreml, mnn) export it unchanged and the parity functions compare it. Inputs (``users`` is the
number of requests in a batch, ``batch`` the number of candidate rows; one request on a phone has
``users = 1`` and ``row_user`` all zeros):

=============  =======================  ==========================================================
``cand``       (batch,) int64           the candidate's category (vocabulary index; 0 = unknown)
``row_user``   (batch,) int64           which request (row of the inputs below) the candidate is for
``tagsets``    (users, S) int64         the request's tag itemsets present in the interest table (0 = pad)
``prof_key``   (users, K) int64         the profile's slots: category index (0 = empty slot)
``prof_w``     (users, K) float32       each slot's stored weight
``prof_age_h`` (users, K) float32       hours from the slot's time to the request
``context``    (users, F) float32       the request's context features
=============  =======================  ==========================================================

Outputs: ``prob_rank`` and ``logit_rank`` (batch,), the fused score. :meth:`RankScorer.scores` also
returns the four scenario scores, each in [0, 1]:

- ``interest`` = max over the request's tag itemsets of the (itemset, category) lift score;
- ``context``  = 1 / (1 + e^{−2F}) of the candidate's industry's Gentle AdaBoost sum F (0.5 when dropped);
- ``keyword``  = Σ_k w_k(t) · A[key_k, cand] / Σ_k w_k(t), A the TF-IDF term → category table;
- ``recency``  = w_c(t) / (1 + w_c(t)), w_c(t) the candidate's own decayed profile weight;

with ``w_k(t) = w_k · e^{−α_k · age_k}`` (the profile's Newton cooling, evaluated at request time).
The fusion has two tiers: ``tier = [w_c(t) > in_profile]`` (the candidate is in the user's profile) and per
tier and industry ``z = W[tier, g] · (interest, context, keyword, log(1 + w_c(t)), prior_c) + b[tier, g]``,
``g`` the candidate's industry and ``prior_c = log(1 + n_c) / log(1 + max n)`` the popularity prior (n the
training users' engagements). ``prob_rank = (tier + σ(z)) / 2``: the profile's candidates first, each
tier in the order of its own fused probability; ``logit_rank`` is its logit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeintent.toolkit.models.signature import DeclaresSignature, InputSpec, Signature

SCENARIOS = ("interest", "context", "keyword", "recency")
#: the fusion's inputs: three scenario scores, log(1 + w_c(t)) (the recency scenario's weight) and the popularity prior
FUSION_INPUTS = ("interest", "context", "keyword", "log_weight", "prior")
INPUTS = ("cand", "row_user", "tagsets", "prof_key", "prof_w", "prof_age_h", "context")


class RankScorer(DeclaresSignature, nn.Module):
    registry_name = "rank"
    tasks = ("rank",)
    streams: tuple[str, ...] = ()

    def __init__(self, tables: dict[str, np.ndarray]) -> None:
        super().__init__()
        interest = np.asarray(tables["interest"], np.float32)  # (N_sets, V)
        self.vocab = int(interest.shape[1])
        self.n_sets = int(interest.shape[0])
        self.n_context = int(tables["n_context"])
        self.n_industries = int(tables["stump_feat"].shape[0])
        self.rounds = int(tables["stump_feat"].shape[1])
        self.register_buffer("interest", torch.from_numpy(interest))
        self.register_buffer("keyword", torch.from_numpy(np.asarray(tables["keyword"], np.float32)))
        self.register_buffer("categories", torch.arange(self.vocab, dtype=torch.int64))
        self.register_buffer("alpha_h", torch.from_numpy(np.asarray(tables["alpha_per_h"], np.float32)))
        industry_of = np.asarray(tables["industry_of"], np.int64)
        self.register_buffer("industry_of", torch.from_numpy(industry_of))
        self.register_buffer("stump_feat", torch.from_numpy(np.asarray(tables["stump_feat"], np.int64).reshape(-1).copy()))
        # 2F = Σ (2·right + 2·(left − right)·[x ≤ thr]): constants folded so the graph has fewer nodes
        left, right = (np.asarray(tables[k], np.float64) for k in ("stump_left", "stump_right"))
        self.register_buffer("stump_thr", torch.from_numpy(np.asarray(tables["stump_thr"], np.float32)))
        self.register_buffer("stump_base2", torch.from_numpy((2.0 * right).astype(np.float32)))
        self.register_buffer("stump_step2", torch.from_numpy((2.0 * (left - right)).astype(np.float32)))
        # the two-tier fusion: per tier (0 = not in the profile, 1 = in it) and industry, weights over
        # FUSION_INPUTS; the prior (a constant per category) folds into each category's bias
        fw = np.asarray(tables["fusion_w"], np.float32)  # (2, G, 5)
        fb = np.asarray(tables["fusion_b"], np.float32)  # (2, G)
        if fw.ndim != 3 or fw.shape[0] != 2 or fw.shape[2] != len(FUSION_INPUTS):
            raise ValueError(f"fusion weights of shape {fw.shape}, expected (2, industries, {len(FUSION_INPUTS)})")
        self.in_profile = float(tables.get("in_profile", 0.05))
        prior = fusion_prior(np.asarray(tables["popularity"], np.float64))
        self.register_buffer("prior", torch.from_numpy(prior.astype(np.float32)))
        for t in (0, 1):
            w = fw[t][industry_of]  # (V, 5): each category's industry's weights
            for j, name in enumerate(FUSION_INPUTS[:4]):
                self.register_buffer(f"fusion{t}_{name}", torch.from_numpy(np.ascontiguousarray(w[:, j])))
            bias = fb[t][industry_of] + w[:, 4] * prior.astype(np.float32)
            self.register_buffer(f"fusion{t}_bias", torch.from_numpy(bias.astype(np.float32)))

    def signature(self) -> Signature:
        return Signature(
            inputs=(
                InputSpec("cand", "int64", ("batch",)),
                InputSpec("row_user", "int64", ("batch",)),
                InputSpec("tagsets", "int64", ("users", "S")),
                InputSpec("prof_key", "int64", ("users", "K")),
                InputSpec("prof_w", "float32", ("users", "K")),
                InputSpec("prof_age_h", "float32", ("users", "K")),
                InputSpec("context", "float32", ("users", self.n_context)),
            ),
            outputs=("prob_rank", "logit_rank"),
        )

    def per_request(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every scenario score and the fused logit of every category, per request: (users, V) each.

        All the work is per request (O(K·V + S·V + G·R)); a candidate row is then one lookup, so the
        cost hardly grows with the number of candidates.
        """
        key = b["prof_key"]
        live = (key > 0).to(torch.float32)
        w = b["prof_w"] * torch.exp(-_take(self.alpha_h, key) * b["prof_age_h"]) * live  # (U, K) at request time
        wk = w.unsqueeze(1)  # (U, 1, K): weighted sums over the slots as batched matmuls (a reduce over
        # the middle axis is several times slower in onnxruntime)
        onehot = (key.unsqueeze(2) == self.categories).to(torch.float32)  # (U, K, V)
        own = torch.matmul(wk, onehot).squeeze(1)  # (U, V): each category's own decayed weight
        recency = own / (1.0 + own)
        kw = torch.matmul(wk, torch.nn.functional.embedding(key, self.keyword)).squeeze(1)  # (U, V)
        keyword = kw / torch.clamp(w.sum(dim=1, keepdim=True), min=1e-6)
        interest = torch.amax(torch.nn.functional.embedding(b["tagsets"], self.interest), dim=1)  # (U, V)
        # context: each industry's stump sum (right + (left − right)·[x ≤ thr]: a select by arithmetic,
        # coremltools' select loses the broadcast dim), then each category's industry; the fusion uses
        # each category's industry's weights
        if "context_by_industry" in b:  # scored outside the graph (ContextScorer: round budget + cache); torch only
            p_g = b["context_by_industry"]
        else:
            x = torch.index_select(b["context"], 1, self.stump_feat).reshape(-1, self.n_industries, self.rounds)
            f2 = (self.stump_base2 + self.stump_step2 * (x <= self.stump_thr).to(torch.float32)).sum(dim=2)  # 2F: (U, G)
            p_g = torch.sigmoid(f2)
        context = torch.index_select(p_g, 1, self.industry_of)  # (U, V)
        tier = (own > self.in_profile).to(torch.float32)  # 1: the candidate is in the user's profile
        log_w = torch.log1p(own)
        z0 = (interest * self.fusion0_interest + context * self.fusion0_context + keyword * self.fusion0_keyword
              + log_w * self.fusion0_log_weight + self.fusion0_bias)  # fmt: skip
        z1 = (interest * self.fusion1_interest + context * self.fusion1_context + keyword * self.fusion1_keyword
              + log_w * self.fusion1_log_weight + self.fusion1_bias)  # fmt: skip
        z = z0 + tier * (z1 - z0)  # the tier's fused log-odds
        return {"interest": interest, "context": context, "keyword": keyword, "recency": recency,
                "log_weight": log_w, "tier": tier, "fused_logit": z, "rank": tiered_logit(z, tier)}  # fmt: skip

    def scores(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per candidate row: the four scenario scores, the fusion's inputs and the ranking logit (``rank``)."""
        at = b["row_user"] * self.vocab + b["cand"]
        return {k: torch.index_select(v.reshape(-1), 0, at) for k, v in self.per_request(b).items()}

    def forward(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        at = b["row_user"] * self.vocab + b["cand"]
        return {"rank": torch.index_select(self.per_request(b)["rank"].reshape(-1), 0, at)}


LN2 = float(np.log(2.0))


def fusion_prior(popularity: np.ndarray) -> np.ndarray:
    """The popularity prior in [0, 1]: ``log(1 + n_c) / log(1 + max n)``, n the training users' engagements."""
    top = float(np.max(popularity)) if len(popularity) else 0.0
    return np.log1p(np.maximum(popularity, 0.0)) / np.log1p(top) if top > 0 else np.zeros_like(popularity, np.float64)


def tiered_logit(z: torch.Tensor, tier: torch.Tensor) -> torch.Tensor:
    """The logit of ``(tier + σ(z)) / 2``: a candidate in the profile ranks above every one outside it,
    and each tier is ordered by its own fused probability σ(z). In closed form (no log of a rounded
    probability): tier 0 → ``−softplus(ln 2 − z)``, tier 1 → ``z + ln 2 + softplus(−z − ln 2)``."""
    out0 = -torch.nn.functional.softplus(LN2 - z)
    out1 = z + LN2 + torch.nn.functional.softplus(-z - LN2)
    return out0 + tier * (out1 - out0)


def _take(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` for a 1-D table and an index of any shape (an embedding lookup: one gather on every
    target, no reshape through a runtime shape, which coremltools loses the rank of)."""
    return torch.nn.functional.embedding(idx, table.unsqueeze(1)).squeeze(-1)


class _Rows:
    """Golden rows as the exporters' ``samples``: ``example_inputs`` asks for ``len`` and ``prepare_batch``."""

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self.feeds = feeds

    def __len__(self) -> int:
        return len(self.feeds["cand"])


def take_rows(feeds: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """The feeds of candidate rows ``idx`` only, with just the requests they need (renumbered)."""
    idx = np.asarray(idx)
    users, row_user = np.unique(feeds["row_user"][idx], return_inverse=True)
    out = {"cand": feeds["cand"][idx], "row_user": row_user.astype(np.int64)}
    for k in ("tagsets", "prof_key", "prof_w", "prof_age_h", "context"):
        out[k] = feeds[k][users]
    return out


def _prepare(model: RankScorer):
    def prepare_batch(samples: _Rows, idx: np.ndarray, widths=None) -> dict[str, torch.Tensor]:
        f = take_rows(samples.feeds, idx)
        return {k: torch.from_numpy(np.ascontiguousarray(f[k])) for k in INPUTS}

    return prepare_batch


def exportable(model: RankScorer, feeds: dict[str, np.ndarray]) -> tuple[RankScorer, _Rows]:
    """``(model, samples)`` as the house exporters take them (``Target.export(model, None, samples, …)``)."""
    model.prepare_batch = _prepare(model)
    return model, _Rows(feeds)


@torch.no_grad()
def run_torch(model: RankScorer, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The torch reference on exported-signature feeds: scenario scores and the exported outputs."""
    model.eval()
    keys = [k for k in (*INPUTS, "context_by_industry") if k in feeds]
    s = model.scores({k: torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in keys})
    out = {k: v.numpy() for k, v in s.items()}
    out["logit_rank"] = out["rank"]
    out["prob_rank"] = torch.sigmoid(s["rank"]).numpy()
    return out
