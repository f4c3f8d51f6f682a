"""AITM (Meituan, KDD 2021 "Modeling the Sequential Dependence among Audience Multi-step Conversions
with Multi-task Learning in Targeted Display Advertising") over DIPN's stream encoders.

A conversion funnel is an ordered list of tasks, upstream first, taken from ``features.FUNNEL``
(``browse_rt`` → ``engage_rt`` → ``buy_rt``; default ``engage_rt`` → ``buy_rt``). Its labels are
cumulative ("reached step ≥ k within the real-time horizon"), so y_k ≤ y_{k−1} on every row.

Data flow (k = 1 … K, following the authors' ``AITM_standard.py``)::

    batch ─► DIPN's stream encoders (embeddings, GRU per stream, intra/inter-view attention) ─► x
    tower_k(x) = q_k                                  (Linear + ReLU, stacked ``tower_layers`` times)
    z_1 = q_1
    z_k = AIT(q_k, info_k(z_{k−1}))  for k ≥ 2        (info_k: Linear + ReLU + dropout)
    logit_k = head_k(z_k)                             (probability sigmoid(logit_k))

- **AIT** (:class:`AIT`): the two slots u ∈ {q_k, p_{k−1}} are each scored by their own
  (W_Q u)·(W_K u) / √d, the scores go through a softmax over the two slots, and z_k is the weighted
  sum of W_V u (W_Q, W_K, W_V are d × d, no bias). One AIT and one info layer per transfer k−1 → k.
- **Behavioural expectation calibrator** (:meth:`AITM.aux_loss`, added by the trainer to the per-task
  BCE): α · mean over the batch of Σ_k max(p_k − p_{k−1}, 0), on the probabilities (it acts on the
  model's outputs, never on labels, which are ordered by construction). α = ``calibrator``; the
  authors use 0.6 for two steps and 0.3 for four. The penalty alone is soft: it acts only on the rows that
  break the order at the current step, with a gradient α·p(1−p) that is small where such rows sit (at the
  bottom of p_{k−1}). So with the calibrator on, the order is also a condition on the epoch early stopping
  keeps (:attr:`AITM.epoch_condition`): on the rows of the users the model trains and validates on,
  p_k > p_{k−1} on at most ``max_violation`` of them (default 0.1 %); an epoch that breaks it is not kept
  while one that meets it exists.

Baselines and ablations on the same encoders (the AITM paper's comparisons), chosen by options:

- ``transfer="ait"`` (AITM), ``"none"`` (towers only: shared-bottom with independent heads),
  ``"esmm"`` (ESMM's chain rule: p_k = p_{k−1} · σ(c_k), c_k a conditional logit, so p_k ≤ p_{k−1}
  exactly), ``"mmoe"`` (``experts`` experts over the encoders, one softmax gate per task, then towers);
- ``calibrator`` (α; 0 turns it off). The paper's rows: ``aitm`` (ait, 0.6), AITM without the
  calibrator (ait, 0), AITM without AIT (none, 0.6), shared-bottom (none, 0), ESMM (esmm, 0),
  MMoE (mmoe, 0).

The model trains unweighted (it has no ``shift_logit``): a class weight would move each step's
probabilities by a different factor and set the calibrator against the weighting. ESMM's logits are
logit(p_k) = log p_k − log(1 − p_k) with log p_k = Σ_j log σ(·) (as −softplus(−·)), so every variant exports the same
outputs (``prob_<task>``, ``logit_<task>``) as every other model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features import FUNNEL, is_funnel
from edgeintent.toolkit.models import register_model
from edgeintent.toolkit.models.base import DEFAULT_DROP
from edgeintent.toolkit.models.dipn import DIPN

TRANSFERS = ("ait", "none", "esmm", "mmoe")


def check_funnel(tasks: tuple[str, ...]) -> None:
    """``tasks`` must be at least two steps of ``FUNNEL``, upstream first; else a one-line ``ConfigError``."""
    if not is_funnel(tasks):
        raise ConfigError(
            f"aitm: tasks must be two or more funnel steps in order, upstream first ({' → '.join(FUNNEL)}), "
            f"got {', '.join(tasks) or 'none'}"
        )


def tower(in_dim: int, dim: int, layers: int, dropout: float) -> nn.Sequential:
    """``layers`` × (Linear + ReLU + dropout), stacked: each layer reads the previous one's output."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(in_dim if i == 0 else dim, dim), nn.ReLU()]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
    return nn.Sequential(*mods)


class AIT(nn.Module):
    """Adaptive information transfer: attention over the two slots [q_k, p_{k−1}] (B, d) each → z_k (B, d)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.scale = 1.0 / math.sqrt(dim)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2, d) slots → (B, 2) softmax over the slots of (W_Q u)·(W_K u) / √d."""
        return torch.softmax((self.q(x) * self.k(x)).sum(-1) * self.scale, dim=1)

    def forward(self, q_k: torch.Tensor, p_prev: torch.Tensor) -> torch.Tensor:
        x = torch.stack([q_k, p_prev], dim=1)
        return (self.weights(x).unsqueeze(-1) * self.v(x)).sum(1)


def calibrator_penalty(probs: list[torch.Tensor]) -> torch.Tensor:
    """mean over the batch of Σ_k max(p_k − p_{k−1}, 0) (probabilities upstream first, each (B,))."""
    return torch.stack([torch.relu(b - a) for a, b in zip(probs, probs[1:])], dim=0).sum(0).mean()


def violation_share(tasks: tuple[str, ...], logits: dict) -> float:
    """The largest share, over the funnel's steps k ≥ 2, of rows where p_k > p_{k−1} (compared on logits)."""
    return max(float(np.mean(np.asarray(logits[b]) > np.asarray(logits[a]))) for a, b in zip(tasks, tasks[1:]))


_OPTIONS = dict(attention=True, intra=True, inter=True, rnn="gru", id_dropout=0.1, drop_features=DEFAULT_DROP,
                use_age=True, coupon=True, time_bias=True, transfer="ait", calibrator=0.6, max_violation=0.001,
                tower_layers=2, experts=3, dropout=0.0)  # fmt: skip


@register_model("aitm", tasks=("engage_rt", "buy_rt"), embed_dim=8, hidden=32, **_OPTIONS,
                description="AITM: DIPN encoders, a tower per funnel step, adaptive information transfer, calibrator")  # fmt: skip
class AITM(DIPN):
    def __init__(
        self,
        spec,
        streams: tuple[str, ...],
        tasks: tuple[str, ...],
        embed_dim: int,
        hidden: int,
        transfer: str = "ait",
        calibrator: float = 0.6,
        max_violation: float = 0.001,
        tower_layers: int = 2,
        experts: int = 3,
        dropout: float = 0.0,
        **encoder,
    ) -> None:
        tasks = tuple(tasks)
        check_funnel(tasks)
        if transfer not in TRANSFERS:
            raise ConfigError(f"aitm: transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
        if isinstance(calibrator, bool) or not isinstance(calibrator, (int, float)) or not 0 <= calibrator < math.inf:
            raise ConfigError(f"aitm: calibrator (α) must be a non-negative number, got {calibrator!r}")
        if isinstance(max_violation, bool) or not isinstance(max_violation, (int, float)) or not 0.0 <= max_violation <= 1.0:
            raise ConfigError(f"aitm: max_violation must be a share in [0, 1], got {max_violation!r}")
        for name, v in (("tower_layers", tower_layers), ("experts", experts)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"aitm: {name} must be a positive integer, got {v!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"aitm: dropout must be in [0, 1), got {dropout!r}")
        # read by build_head, which DIPN's constructor calls after building the stream encoders
        self.funnel = dict(transfer=transfer, calibrator=float(calibrator), max_violation=float(max_violation),
                           tower_layers=tower_layers, experts=experts, dropout=float(dropout))  # fmt: skip
        super().__init__(spec, streams, tasks, embed_dim, hidden, multitask=True, **encoder)
        self.hparams.pop("multitask")
        self.hparams.update(self.funnel)

    def build_head(self) -> None:
        d, f = self.hparams["hidden"], self.funnel
        width, n = self.encoded_width, len(self.tasks)
        if f["transfer"] == "mmoe":
            self.experts = nn.ModuleList(nn.Sequential(nn.Linear(width, d), nn.ReLU()) for _ in range(f["experts"]))
            self.gates = nn.ModuleList(nn.Linear(width, f["experts"]) for _ in range(n))
            width = d
        self.towers = nn.ModuleList(tower(width, d, f["tower_layers"], f["dropout"]) for _ in range(n))
        if f["transfer"] == "ait":
            self.info = nn.ModuleList(tower(d, d, 1, f["dropout"]) for _ in range(n - 1))  # Linear + ReLU + dropout
            self.ait = nn.ModuleList(AIT(d) for _ in range(n - 1))
        self.heads = nn.ModuleList(nn.Linear(d, 1) for _ in range(n))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.encode(batch)
        transfer = self.funnel["transfer"]
        if transfer == "mmoe":
            e = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, d)
            q = [t(torch.einsum("be,bed->bd", torch.softmax(g(x), dim=-1), e)) for t, g in zip(self.towers, self.gates)]
        else:
            q = [t(x) for t in self.towers]
        if transfer == "ait":
            z = [q[0]]
            for k in range(1, len(q)):
                z.append(self.ait[k - 1](q[k], self.info[k - 1](z[k - 1])))
            q = z
        logits = [h(v).squeeze(-1) for h, v in zip(self.heads, q)]
        if transfer == "esmm":  # p_k = p_{k-1} · σ(c_k): log p_k = Σ_j log σ(c_j), logit = log p − log(1 − p)
            # log σ(c) = −softplus(−c): coremltools converts softplus but not log_sigmoid
            # and a running sum of adds, not cumsum (which the MIL reference has no kernel for)
            log_p = [-nn.functional.softplus(-logits[0])]
            for c in logits[1:]:
                log_p.append(log_p[-1] - nn.functional.softplus(-c))
            logits = [logits[0]] + [lp - torch.log((1.0 - torch.exp(lp)).clamp(min=1e-7)) for lp in log_p[1:]]
        return dict(zip(self.tasks, logits))

    def aux_loss(self, out: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The behavioural expectation calibrator, α · mean_batch Σ_k max(p_k − p_{k−1}, 0) (None when α = 0)."""
        alpha = self.funnel["calibrator"]
        if alpha == 0:
            return None
        return alpha * calibrator_penalty([torch.sigmoid(out[t]) for t in self.tasks])

    @property
    def epoch_condition(self):
        """With the calibrator on, the condition an epoch must meet to be kept (read by the trainer's early
        stopping): on the rows of the users it trains and validates on, p_k > p_{k−1} on at most
        ``max_violation`` of them. None when the calibrator is off."""
        if self.funnel["calibrator"] == 0:
            return None

        def holds(logits: dict) -> tuple[bool, float]:
            share = violation_share(self.tasks, logits)
            return share <= self.funnel["max_violation"], share

        return holds

    #: trains unweighted (see the module docstring): no prior correction after training
    shift_logit = None

    @property
    def selection_task(self) -> str:
        """The task whose validation AUC early stopping follows: the funnel's last step."""
        return self.tasks[-1]

