"""Fit a profile's constant on published latencies; report projected / published on held-out rows.

The projection of a compute-bound model is ``t_phone = t_host × calib_ms / host_calib_ms``
(``project.py``): ``calib_ms`` is the time the host calibration block (``host.py``) would take on the
phone core. One constant per profile, fitted as the geometric mean of ``published / host × host_calib_ms``
over the profile's calibration rows (least squares in log space). The check rows never enter the fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from edgeintent.runtime_sim.calibration.published import Published


def key(row: Published) -> str:
    return f"{row.arch}@{row.input_hw}"


def geomean(xs) -> float:
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def fit_calib_ms(rows: list[Published], host_ms: Mapping[str, float], host_calib_ms: float) -> float:
    """The profile's ``calib_ms`` from its calibration rows."""
    if not rows:
        raise ValueError("no calibration rows")
    return geomean(r.ms / host_ms[key(r)] * host_calib_ms for r in rows)


def ratios(rows: list[Published], host_ms: Mapping[str, float], host_calib_ms: float, calib_ms: float) -> list[dict]:
    """projected / published for each row under the constant ``calib_ms``."""
    out = []
    for r in rows:
        proj = host_ms[key(r)] * calib_ms / host_calib_ms
        out.append({"arch": r.arch, "input": r.input_hw, "role": r.role, "soc": r.soc, "published_ms": r.ms,
                    "host_ms": host_ms[key(r)], "projected_ms": proj, "ratio": proj / r.ms, "source": r.source})  # fmt: skip
    return out


def spread(rs: list[dict]) -> dict:
    vals = [r["ratio"] for r in rs]
    return {"n": len(vals), "min": min(vals), "max": max(vals), "geomean": geomean(vals)}


def fit_profile(profile: str, table: list[Published], host_ms: Mapping[str, float], host_calib_ms: float) -> dict:
    cal = [r for r in table if r.profile == profile and r.role == "calibration"]
    chk = [r for r in table if r.profile == profile and r.role == "check"]
    k = fit_calib_ms(cal, host_ms, host_calib_ms)
    rc, rk = ratios(cal, host_ms, host_calib_ms, k), ratios(chk, host_ms, host_calib_ms, k)
    return {"profile": profile, "calib_ms": k, "speed_vs_this_host": host_calib_ms / k,
            "calibration_rows": rc, "check_rows": rk, "calibration_spread": spread(rc), "check_spread": spread(rk)}  # fmt: skip
