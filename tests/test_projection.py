"""Projection to the phone profiles: the published table and its sources, the fit kept apart from the
check rows, the bandwidth term's direction, the host record, two hosts agreeing, precision and uncertainty.

Correctness, not timing: the published-vs-projected ratios are measured by
``benchmarks/calibrate_devices.py``, not here.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from edgeintent.runtime_sim import devices as D
from edgeintent.runtime_sim import host as H
from edgeintent.runtime_sim import project
from edgeintent.runtime_sim.calibration import fit as F
from edgeintent.runtime_sim.calibration.published import CALIBRATION, CHECK, TABLE, rows

ZEN3 = H.HostRecord("AMD EPYC", "family 25 model 1", 2445.0, "AVX2", "x86_64", calib_ms=1.55, calib_runs=100, bandwidth_gbs=16.0)
ZEN4 = H.HostRecord("AMD EPYC 9B14", "family 25 model 17", 2596.0, "AVX-512", "x86_64", calib_ms=0.9, calib_runs=100,
                    bandwidth_gbs=25.0)  # fmt: skip


# --- the published table ---------------------------------------------------------------------------


def test_every_published_row_names_its_source_and_is_fp32_one_thread():
    from edgeintent.runtime_sim.calibration.archs import ARCHS

    assert TABLE
    for r in TABLE:
        assert r.profile in D.DEVICES and D.get_device(r.profile).core == r.core, r
        assert r.arch in ARCHS and r.ms > 0 and r.input_hw in (224, 227)
        assert r.repo in ("PaddlePaddle/Paddle-Lite", "Tencent/ncnn") and r.path.endswith(".md")
        assert re.fullmatch(r"[0-9a-f]{40}", r.commit) and r.line > 0
        assert "fp16" not in r.name_there.lower() and "int8" not in r.name_there.lower()
        assert "1 thread" in r.conditions
        # the figure is the right cell of the source line kept verbatim
        if r.repo == "Tencent/ncnn":
            assert r.excerpt.split("avg =")[1].strip() == f"{r.ms:.2f}"
        else:
            cells = [c.strip() for c in r.excerpt.strip().strip("|").split("|")]
            col = {"Snapdragon 855": 2, "Snapdragon 625": 5}[r.soc.split(" (")[0]] if "v2.11" in r.conditions else 4
            assert cells[col] == f"{r.ms:.2f}", r
    assert not set(CALIBRATION) & set(CHECK)
    for p in ("cpu-arm", "cpu-arm-low"):  # both profiles the bar covers: fitted on some rows, checked on others
        assert rows(p, "calibration") and len({r.arch for r in rows(p, "check")}) >= 4


def test_the_architectures_are_torchvisions():
    torch = pytest.importorskip("torch")
    from edgeintent.runtime_sim.calibration.archs import ARCHS, TORCHVISION_PARAMS, build

    assert set(ARCHS) == set(TORCHVISION_PARAMS) == {r.arch for r in TABLE}
    for name in ("mobilenet_v3_small", "shufflenet_v2_x1_0", "squeezenet1_1"):
        m = build(name)  # raises when the parameter count differs from torchvision's
        with torch.no_grad():
            assert m(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


# --- the fit ------------------------------------------------------------------------------------------


def test_fit_recovers_a_constant_and_never_sees_the_check_rows():
    host_ms = {F.key(r): r.ms / 7.0 for r in rows("cpu-arm")}  # a host exactly 7x faster than this phone on every model
    res = F.fit_profile("cpu-arm", list(TABLE), host_ms, host_calib_ms=2.0)
    assert res["calib_ms"] == pytest.approx(14.0)
    assert all(r["ratio"] == pytest.approx(1.0) for r in res["calibration_rows"] + res["check_rows"])
    # a different published time on a check row changes its ratio, never the constant
    moved = [replace(r, ms=r.ms * 3) if r.role == "check" else r for r in TABLE]
    res2 = F.fit_profile("cpu-arm", moved, host_ms, host_calib_ms=2.0)
    assert res2["calib_ms"] == pytest.approx(res["calib_ms"])
    assert all(r["ratio"] == pytest.approx(1 / 3) for r in res2["check_rows"])


def test_profile_constants_are_the_fit_and_their_check_range_is_recorded():
    for name in ("cpu-arm", "cpu-arm-low"):
        p = D.get_device(name)
        assert p.calib_ms and p.calib_ms > 0 and "fitted" in p.calibrated and p.precision == "fp32"
        lo, hi = p.check_range
        assert 0 < lo <= 1 <= hi
    # derived profiles say so and carry no measured range
    for name in ("cpu-arm-little", "iphone"):
        p = D.get_device(name)
        assert "derived" in p.calibrated and p.check_range is None and p.calib_ms > 0
    assert D.get_device("cpu-arm-little").calib_ms > D.get_device("cpu-arm-low").calib_ms * 0.9


# --- the projection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [ZEN3, ZEN4], ids=["zen3", "zen4"])
def test_more_data_movement_never_makes_a_slower_phone_look_faster(host):
    for dev in D.list_devices():
        s, b = dev.speed_vs(host), dev.bandwidth_vs(host)
        fs = [project.factor(s, b, m) for m in np.linspace(0, 1, 21)]
        assert all(f2 >= f1 - 1e-12 for f1, f2 in zip(fs, fs[1:])), dev.name
        assert fs[0] == pytest.approx(1 / s)
    # the uncapped term would have: every phone's bandwidth ratio exceeds its speed ratio on a Zen 4
    arm = D.get_device("cpu-arm")
    assert arm.bandwidth_vs(ZEN4) > arm.speed_vs(ZEN4)


def test_the_same_bundle_on_two_hosts_projects_the_same_phone_time():
    """A host 1.72x faster measures the model and the calibration block 1.72x faster: same phone time."""
    m = 0.2
    for name in ("cpu-arm", "cpu-arm-low", "cpu-arm-little", "iphone"):
        dev = D.get_device(name)
        t3 = 10.0  # ms measured on the Zen 3
        t4 = t3 * ZEN4.calib_ms / ZEN3.calib_ms  # the same model on the faster Zen 4
        p3 = t3 * project.projection(dev, ZEN3, m, "test")["factor"]
        p4 = t4 * project.projection(dev, ZEN4, m, "test")["factor"]
        assert p4 / p3 == pytest.approx(1.0, abs=0.15), name
        assert p4 / p3 == pytest.approx(1.0, abs=1e-9), name  # the scaling itself is exact; the 15 % is measurement
    # the host profile projects to itself on any host
    assert project.projection(D.get_device("host"), ZEN4, m, "test")["factor"] == pytest.approx(1.0)


def test_a_projection_says_its_host_precision_and_uncertainty():
    dev = D.get_device("cpu-arm-low")
    p = project.projection(dev, ZEN3, 0.1, "test")
    assert p["host"]["cpu"] == "AMD EPYC" and p["host"]["simd"] == "AVX2" and p["host"]["calib_ms"] == 1.55
    assert p["precision"] == "fp32" and "fp16" in p["precision_note"]
    assert p["uncertainty"]["check_ratio_range"] == list(dev.check_range)
    lo, hi = dev.check_range
    assert project.time_range(100.0, dev.check_range) == pytest.approx([100 / hi, 100 / lo])
    assert project.projection(D.get_device("iphone"), ZEN3, 0.1, "t")["uncertainty"]["check_ratio_range"] is None


# --- the host record --------------------------------------------------------------------------------------


def test_simd_level_reads_the_widest_flag():
    assert H.simd_level({"sse4_2", "avx", "avx2", "avx512f"}) == "AVX-512"
    assert H.simd_level({"sse4_2", "avx", "avx2"}) == "AVX2"
    assert H.simd_level({"fp", "asimd", "asimdhp"}) == "NEON+fp16"
    assert H.simd_level({"fp", "asimd"}) == "NEON"
    assert H.simd_level(set()) == "none"


def test_the_host_is_measured_once_per_process():
    rec = H.host_record()
    assert rec is H.host_record()  # cached
    assert rec.calib_ms > 0 and rec.calib_runs == H.CALIBRATION_RUNS and rec.bandwidth_gbs > 0
    assert rec.cpu and rec.simd != "" and rec.machine
    assert "calibration block" in rec.label
