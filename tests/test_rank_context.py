"""The simulator's context layer (``simctx:``): deterministic, additive, industry-dependent weather effects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from edgeintent.toolkit.data.simulator import context as C
from edgeintent.toolkit.data.sources import load_source


def test_simctx_only_relabels_conversions_and_leaves_sim_unchanged():
    plain = load_source("sim:400:2").events.stream("cloud")
    again = load_source("sim:400:2").events.stream("cloud")
    ctx = load_source("simctx:400:2")
    cloud = ctx.events.stream("cloud")
    assert plain.equals(again)  # sim: is untouched by the layer's existence
    assert cloud.num_rows == plain.num_rows
    for col in ("user_id", "ts_ms", "item_id", "category_id", "price"):
        assert cloud[col].equals(plain[col])
    a0 = np.asarray(plain["action"].cast(pa.string()).to_pylist())
    a1 = np.asarray(cloud["action"].cast(pa.string()).to_pylist())
    changed = a0 != a1
    assert changed.any() and set(a0[changed]) <= {"fav", "cart", "buy"} and set(a1[changed]) == {"view"}
    assert load_source("simctx:400:2").events.stream("cloud").equals(cloud)  # deterministic
    assert ctx.decisions is None and ctx.meta["context"]["features"] == list(C.FEATURES)


def test_weather_is_plausible_and_keep_rates_follow_the_industry_rules():
    hours = np.arange(24 * 60) + 470_000
    w = C.weather(np.zeros_like(hours), hours, seed=0)
    assert 0.1 < w[:, 2].mean() < 0.3  # rain in about 20 % of hours
    assert (w[w[:, 3] > 0, 0] < 1.0).all() and (w[:, 3] <= w[:, 2]).all()  # snow only when it rains below 1 °C
    assert 40 <= w[:, 1].min() and w[:, 1].max() <= 95
    dry = np.array([[20.0, 50, 0, 0, 0]])
    wet = np.array([[5.0, 90, 1, 0, 2]])
    rates = {k: (C.keep_rate(np.array([k]), dry)[0], C.keep_rate(np.array([k]), wet)[0]) for k in range(4)}
    assert rates == {0: (C.KEEP_DRY, 1.0), 1: (1.0, C.KEEP_WET), 2: (C.KEEP_WARM, 1.0), 3: (1.0, 1.0)}


def test_the_context_scorer_finds_the_weather_effect():
    """On simctx, rain separates conversions from views in an outdoor-like industry (the stumps split
    on rain or condition), and less so in the industry without a weather effect."""
    from edgeintent.rank.scorers import gentle_adaboost

    ds = load_source("simctx:3000:1")
    cloud = ds.events.stream("cloud")
    user, ts = cloud["user_id"].to_numpy(), cloud["ts_ms"].to_numpy()
    act = np.asarray(cloud["action"].cast(pa.string()).to_pylist())
    ind = C.industry_of_category(cloud["category_id"].to_numpy(), 1) % 4
    x = C.lookup(1)(user, ts)
    y = np.isin(act, ["fav", "cart", "buy"])
    outdoor = gentle_adaboost(x[ind == 1], y[ind == 1], rounds=1)
    assert outdoor.feat[0] in (2, 4)  # rain or condition
    assert outdoor.left[0] > outdoor.right[0]  # dry (≤ threshold) converts more
