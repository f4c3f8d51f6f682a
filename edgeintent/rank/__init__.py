"""Scenario coarse ranking (Meituan DSP's scenario-based targeting), sized for the phone.

A few hundred candidates (categories of ads, coupons, items) are scored by cheap per-scenario scorers
and fused per industry:

- ``profile.py``  the decayed interest profile (Newton cooling, override / decay / drop, O(1) per event)
  and its golden trace;
- ``scorers.py``  interest (FP-growth, mlxtend), context (Gentle AdaBoost stumps, hand-written; round
  budget + cache), keyword (TF-IDF, scikit-learn), fusion (per-industry logistic regression);
- ``data.py``     what category / industry / tag / term / request mean on a data source;
- ``device.py``   the scorer as a torch module with a declared signature (exports like a model);
- ``fit.py``      fitting, scoring, the held-out evaluation and the rank bundle.

See ``docs/ranking.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RankConfig:
    vocab: int = 512  # categories kept (index 0 = any other)
    industries: int = 8  # k-means groups of categories
    half_life_h: float = 72.0  # profile half-life
    half_life_overrides: dict = field(default_factory=dict)  # raw category id (str) → hours
    threshold: float = 0.05  # profile weights below this are dropped
    capacity: int = 64  # profile slots (K)
    min_count: int = 5  # FP-growth: an itemset occurs in at least this many (weighted) transactions
    conv_weight: int = 3  # a conversion counts as this many clicks in FP-growth
    rounds: int = 100  # Gentle AdaBoost rounds per industry
    drop_error: float = 0.45  # an industry whose balanced training error stays above this is dropped
    context_rows: int = 20000  # at most this many events per industry to boost on
    negatives: int = 0  # negative candidates per training request for the fusion (0 = every other category)
    test_share: float = 0.2  # held-out users
    seed: int = 0
    max_sets: int = 16  # S: tag itemsets per request (5 tags give 15)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> RankConfig:
        return cls(**d)
