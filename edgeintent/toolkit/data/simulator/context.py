"""City-hour weather with an industry-dependent effect on conversion: the context layer (``simctx:``).

The scenario-ranking source (Meituan DSP's context targeting) boosts per industry over the weather of
the user's city at request time (temperature, humidity, rain, snow, condition). The simulator's own
story has no weather, so this layer is applied *on top of* a simulated data set, deterministically and
additively: ``sim:N:S`` is unchanged, and ``simctx:N:S`` is ``sim:N:S`` with

- every user in one of ``CITIES`` cities (a hash of the user id);
- an hourly weather per (city, hour), a pure function of (seed, city, hour) (splitmix64 hashes, no
  random stream shared with the simulator): temperature = a seasonal mean per city + a daily cycle
  (±5 °C, warmest at 15:00) + a day-to-day swing (±6 °C); humidity 40–95 %; rain in about 20 % of
  hours (a city's wet days cluster: rain needs a wet day, 40 % of days, and a wet hour within it),
  snow when it rains below 1 °C; condition 0 clear, 1 cloudy, 2 rain, 3 snow;
- each category in one of ``INDUSTRIES`` industries (a hash of the category id: the catalogue's
  top-level groups, which a real app knows and the rank stage reads from ``Dataset.meta``);
- conversions (fav, cart, buy) thinned by weather in an industry-dependent way — a thinned conversion
  stays in the log as a ``view`` of the same item at the same time:

  ======================  ==========================================================
  industry % 4 == 0       delivery-like: rain/snow hours keep all, dry hours keep 70 %
  industry % 4 == 1       outdoor-like: dry hours keep all, rain/snow hours keep 50 %
  industry % 4 == 2       warm goods: below 10 °C keep all, 10 °C and above keep 70 %
  industry % 4 == 3       no weather effect
  ======================  ==========================================================

The source describes the direction of such effects (rain helps delivery, hurts outdoor offers) and
not their size (its figures are images we do not have); the keep rates above are set once from that
description, as moderate effects, and were not tuned for any score. The simulator's decision points
are not carried over: their recorded outcomes would disagree with the thinned buys.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from edgeintent.toolkit.data.simulator.catalogue import _mix64

CITIES = 8
INDUSTRIES = 8
HOUR_MS = 3_600_000
FEATURES = ("temperature", "humidity", "rain", "snow", "condition")
#: keep rate of a conversion: (rule, keep when the weather suits the industry, keep when it does not)
KEEP_DRY = 0.7  # delivery-like in dry hours
KEEP_WET = 0.5  # outdoor-like in rain or snow
KEEP_WARM = 0.7  # warm goods at 10 °C and above


def _u01(*parts) -> np.ndarray:
    """A uniform [0, 1) per element from integer arrays (splitmix64 of a mixed key)."""
    x = np.zeros(np.broadcast(*[np.asarray(p) for p in parts]).shape, np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            x = _mix64(x * np.uint64(0x9E3779B97F4A7C15) + np.asarray(p).astype(np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def city_of(user: np.ndarray, seed: int) -> np.ndarray:
    return (_u01(seed, 0xC17, user) * CITIES).astype(np.int64)


def industry_of_category(category_id: np.ndarray, seed: int) -> np.ndarray:
    return (_u01(seed, 0x1D5, category_id) * INDUSTRIES).astype(np.int64)


def weather(city: np.ndarray, hour: np.ndarray, seed: int) -> np.ndarray:
    """(n, 5) float64: temperature °C, humidity %, rain 0/1, snow 0/1, condition 0..3 (hour = unix hours)."""
    city, hour = np.asarray(city, np.int64), np.asarray(hour, np.int64)
    day = hour // 24
    mean = -2.0 + 20.0 * _u01(seed, 0x7E3, city)  # the city's season mean
    daily = 5.0 * np.cos(2 * np.pi * ((hour % 24) - 15) / 24.0)
    swing = 12.0 * (_u01(seed, 0xDA1, city, day) - 0.5)
    temp = mean + daily + swing
    wet_day = _u01(seed, 0x3E7, city, day) < 0.4
    rain = wet_day & (_u01(seed, 0x4A1, city, hour) < 0.5)
    snow = rain & (temp < 1.0)
    cloudy = ~rain & (_u01(seed, 0xC10, city, hour) < np.where(wet_day, 0.7, 0.3))
    humidity = 40.0 + 30.0 * _u01(seed, 0x4D1, city, hour) + 25.0 * rain
    condition = np.where(snow, 3, np.where(rain, 2, np.where(cloudy, 1, 0)))
    return np.stack([temp, humidity, rain.astype(float), snow.astype(float), condition.astype(float)], axis=1)


def keep_rate(industry: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The probability that a conversion of ``industry`` happens in weather ``w`` (rows of :func:`weather`)."""
    kind = industry % 4
    wet = w[:, 2] > 0
    out = np.ones(len(industry))
    out = np.where((kind == 0) & ~wet, KEEP_DRY, out)
    out = np.where((kind == 1) & wet, KEEP_WET, out)
    out = np.where((kind == 2) & (w[:, 0] >= 10.0), KEEP_WARM, out)
    return out


def lookup(seed: int):
    """``(user, ts_ms) -> (n, 5)`` weather of the user's city at that hour."""

    def f(user: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        return weather(city_of(user, seed), np.asarray(ts_ms) // HOUR_MS, seed)

    return f


def apply_context(cloud: pa.Table, seed: int) -> pa.Table:
    """The cloud stream with conversions thinned by weather (a thinned one becomes a ``view``)."""
    action = np.asarray(cloud["action"].cast(pa.string()).to_pylist(), dtype=object)
    user = cloud["user_id"].to_numpy()
    ts = cloud["ts_ms"].to_numpy()
    conv = np.isin(action, ["fav", "cart", "buy"])
    w = weather(city_of(user, seed), ts // HOUR_MS, seed)
    keep = keep_rate(industry_of_category(cloud["category_id"].to_numpy(), seed), w)
    u = _u01(seed, 0xD20, user, ts, cloud["item_id"].to_numpy())
    thinned = conv & (u >= keep)
    action = action.copy()
    action[thinned] = "view"
    typ = cloud.schema.field("action").type
    arr = pa.array(action.tolist(), pa.string())
    arr = arr.dictionary_encode() if pa.types.is_dictionary(typ) else arr
    if pa.types.is_dictionary(typ):
        arr = arr.cast(typ)
    return cloud.set_column(cloud.schema.get_field_index("action"), "action", arr)


def context_meta(seed: int) -> dict:
    """What ``Dataset.meta["context"]`` carries for the rank stage."""
    return {"kind": "sim-weather", "seed": seed, "cities": CITIES, "features": list(FEATURES),
            "lookup": lookup(seed), "industry_of": lambda cat: industry_of_category(np.asarray(cat), seed)}  # fmt: skip
