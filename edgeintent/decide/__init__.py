"""Decisions: coupon allocation (MCKP, primal-dual), the on-device decision rule, policy evaluation."""

from edgeintent.decide.allocation import OBJECTIVES, Allocation, allocate, gains, lp_relaxation, solve

__all__ = ["OBJECTIVES", "Allocation", "allocate", "gains", "lp_relaxation", "solve"]
