"""Behaviour simulator: edgeintent's built-in default data set (``sim:USERS[:SEED]``).

It generates the three streams (gesture, click, cloud) of the same users jointly, with decision
points, the logged coupon offer at each, and the *potential outcomes* under every coupon amount, so
that models and coupon policies can be evaluated against the truth. docs/simulator.md describes the
generative story, the calibration and the signals in the data.

Public API:

- :class:`SimConfig` (what to simulate; frozen, validated) and :class:`SimData` (``events``: an
  :class:`~edgeintent.toolkit.data.schema.EventLog`; ``decisions``: an Arrow table sorted by
  ``(user_id, t_ms)`` with ``user_id``, ``t_ms``, ``offer``, ``propensity`` (the logging policy's
  probability of the offer), ``state``, ``coupon_sensitivity``, ``p_buy`` and ``buy`` (fixed-size lists
  over ``amounts``); its schema metadata holds ``amounts``, ``offer_probs``, ``rt_horizon_ms`` and the
  config as JSON);
- :func:`simulate` (all users at once) and :func:`iter_simulate` (blocks of ``BLOCK_USERS`` users, in
  bounded memory);
- the vocabularies and parameters the data follows (:mod:`~.parameters`).

Determinism: the output depends only on the config. Users are numbered 1..N and produced in fixed
blocks of ``BLOCK_USERS``; block ``b`` draws from ``numpy.random.default_rng([seed, b])``, so
:func:`simulate` is exactly the concatenation of :func:`iter_simulate`'s blocks, whatever the consumer.

Modules: ``parameters`` (constants), ``config`` (SimConfig, SimData), ``sampling`` (vectorised draws),
``catalogue`` (categories, items, prices), ``gestures`` (gesture generation), ``generator`` (the block
generator, ``simulate``, ``iter_simulate``).
"""

from __future__ import annotations

from edgeintent.toolkit.data.schema import STREAMS
from edgeintent.toolkit.data.simulator.config import BLOCK_USERS, SIM_VERSION, SimConfig, SimData
from edgeintent.toolkit.data.simulator.generator import iter_simulate, simulate, simulate_block
from edgeintent.toolkit.data.simulator.parameters import (
    ACTIONS,
    BASE_MU,
    BASE_SD,
    COUPON_SCALE,
    HMOG_MARGINALS,
    HMOG_SIZE_LOG,
    HMOG_SWIPE_SHARE,
    KINDS,
    M_STATE,
    PAGES,
    SENS_SCALE,
    SENS_SHAPE,
    STATES,
    TAOBAO_ACTION_MIX,
    W_STATE,
    WIDGETS,
)

__all__ = [
    "ACTIONS",
    "BASE_MU",
    "BASE_SD",
    "BLOCK_USERS",
    "COUPON_SCALE",
    "HMOG_MARGINALS",
    "HMOG_SIZE_LOG",
    "HMOG_SWIPE_SHARE",
    "KINDS",
    "M_STATE",
    "PAGES",
    "SENS_SCALE",
    "SENS_SHAPE",
    "SIM_VERSION",
    "STATES",
    "STREAMS",
    "TAOBAO_ACTION_MIX",
    "W_STATE",
    "WIDGETS",
    "SimConfig",
    "SimData",
    "iter_simulate",
    "simulate_block",
    "simulate",
]
