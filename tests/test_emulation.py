"""cpu-arm: the aarch64 builds of onnxruntime, MNN and LiteRT under qemu user-mode emulation.

Two layers:

- the worker protocol, error paths and CLI wiring run everywhere (the worker also runs on the
  host python, where its outputs must be bit-identical to the host runners');
- the emulated tests build the environment once per machine (``edgeintent devices setup cpu-arm``,
  cached in ``~/.cache/edgeintent/cpu-arm`` or ``$EDGEINTENT_ARM_CACHE``; ~1-2 min the first time)
  and skip, saying why, only when it cannot be built here: not root, or apt / PyPI unreachable.
  Any other setup failure fails the tests. ``EDGEINTENT_ARM_TESTS=0`` skips them on purpose.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.errors import ConfigError
from edgeintent.exporters import ArtifactMeta, artifact_of, export_bundle, exported_artifacts, load_runner
from edgeintent.parity import run_parity, select_artifacts, variant_batches
from edgeintent.parity.policy import tolerance
from edgeintent.exporters import get_target
from edgeintent.runtimes import RUNTIMES, HostProvider
from edgeintent.runtimes import emulation
from edgeintent.runtimes import worker as arm_worker
from edgeintent.errors import EmulationError
from edgeintent.toolkit.bundle import load_bundle
from edgeintent.toolkit.bundle import load_model


@pytest.fixture(scope="module")
def bundles(brief_bundles, tmp_path_factory):
    """dipn and iidn trained briefly (shared with the parity tests); ``raw`` have nothing exported."""
    root = tmp_path_factory.mktemp("arm")
    out = {}
    for name, raw in brief_bundles.items():
        out[f"{name}_raw"] = raw
        out[name] = root / name
        shutil.copytree(raw, out[name])
        for t in ("onnx", "mnn"):
            export_bundle(out[name], t)
    return out


#: the runtimes whose aarch64 build cpu-arm runs
ARM_RUNTIMES = [name for name in RUNTIMES.names() if RUNTIMES.get(name).arm]
def fresh_copy(bundles, key, tmp_path):
    dst = tmp_path / key
    shutil.copytree(bundles[key], dst)
    return dst


# -- the worker protocol on the host python -------------------------------------------------------


@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_worker_on_the_host_matches_the_host_runners_bit_for_bit(bundles, name):
    bundle = load_bundle(bundles[name])
    model = load_model(bundle)
    feeds = variant_batches(model, bundle)["trimmed"][0][1]
    for meta in exported_artifacts(bundle, ["onnx", "mnn"]):
        want = load_runner(bundle, meta).run(feeds)
        with emulation.host_worker(artifact_of(bundle, meta)) as worker:
            assert worker.arch == platform.machine()
            got = worker.run(feeds)
            again = worker.run({k: v[:1] for k, v in feeds.items()})  # same process, other shapes
        assert set(got) == set(want) == set(meta.outputs)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{meta.artifact} {k}")
            assert again[k].shape == (1,)


@pytest.mark.parametrize("runtime", ARM_RUNTIMES)
def test_every_arm_runtime_opens_in_the_worker(runtime):
    """A runtime marked ``arm`` is one the aarch64 worker can open (its load request names it)."""
    assert runtime in arm_worker.KINDS
    assert emulation.ArmProvider().supports(runtime) is None


def test_worker_modules_import_without_edgeintent_or_torch():
    """The emulated python has no edgeintent and no torch: the worker and the session files it loads as
    top-level modules import neither (here on the host python, where both are installed)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import worker, litert_session, fixed_shapes\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('edgeintent', 'torch', 'ai_edge_litert')))\n"
            "print(sorted(worker.KINDS))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(Path(arm_worker.__file__).parent)], capture_output=True, text=True,
                         check=True).stdout.splitlines()  # fmt: skip
    assert out[0] == "[]", out
    assert out[1] == str(sorted(arm_worker.KINDS))
    # the stand-in error keeps the class name the host reports
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import fixed_shapes, litert_session\n"
            "print(fixed_shapes.ExportError.__name__, litert_session.ExportError is fixed_shapes.ExportError)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(Path(arm_worker.__file__).parent)], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == ["ExportError", "True"]


def test_worker_errors_are_one_line_user_errors(bundles, tmp_path):
    bundle = load_bundle(bundles["dipn"])
    meta = dataclasses.replace(exported_artifacts(bundle, ["onnx"])[0], artifact="exports/onnx/missing.onnx")
    with pytest.raises(EmulationError, match=r"missing\.onnx") as exc:
        emulation.host_worker(artifact_of(bundle, meta))
    assert "\n" not in str(exc.value)
    meta = exported_artifacts(bundle, ["onnx"])[0]
    with emulation.host_worker(artifact_of(bundle, meta)) as session:
        worker = session._impl
        with pytest.raises(EmulationError, match="needs input"):
            worker.run({"coupon": np.zeros(2, np.float32)})
        worker.proc.kill()  # a crash (qemu segfault) is reported, not a hang
        worker.proc.wait()
        with pytest.raises(EmulationError, match="died"):
            worker.run({"coupon": np.zeros(2, np.float32)})


def test_while_loop_mnn_export_runs_on_the_host_at_low_precision(bundles, tmp_path):
    path = fresh_copy(bundles, "dipn_raw", tmp_path)
    res = CliRunner().invoke(main, ["export", str(path), "--target", "mnn", "--precision", "fp16", "--set", "rnn=while-loop", "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    meta = json.loads(res.output)[0]
    assert meta["converter_flags"] == ["--fp16"] and meta["mnn_api"] == "module" and meta["mnn_precision"] == "low"
    report = run_parity(path, ["mnn"])
    assert report["passed"], [r["reasons"] for r in report["results"]]
    assert {(r["target"], r["precision"]) for r in report["results"]} == {("torch", "fp32"), ("mnn", "fp16")}


def test_export_option_errors(bundles, tmp_path):
    path = fresh_copy(bundles, "dipn_raw", tmp_path)
    runner = CliRunner()
    res = runner.invoke(main, ["export", str(path), "--target", "onnx", "--set", "rnn=while-loop"])
    assert res.exit_code == 2 and "no export option 'rnn'" in res.output
    res = runner.invoke(main, ["export", str(path), "--target", "mnn", "--set", "rnn=unrolled"])
    assert res.exit_code == 2 and "native, while-loop" in res.output


# -- setup and device errors (no emulation needed) ------------------------------------------------


def test_parity_on_cpu_arm_without_setup_says_how(bundles, tmp_path, monkeypatch):
    monkeypatch.setenv(emulation.ENV_VAR, str(tmp_path / "empty-cache"))
    res = CliRunner().invoke(main, ["parity", str(bundles["dipn"]), "--device", "cpu-arm", "--target", "onnx"])
    assert res.exit_code == 2
    assert "devices setup cpu-arm" in res.output and "Traceback" not in res.output


def test_coreml_on_cpu_arm_is_a_usage_error_naming_the_reason(bundles):
    res = CliRunner().invoke(main, ["parity", str(bundles["dipn"]), "--device", "cpu-arm", "--target", "coreml"])
    assert res.exit_code == 2
    assert "coreml has no runtime on cpu-arm" in res.output and "Apple" in res.output
    res = CliRunner().invoke(main, ["parity", str(bundles["dipn"]), "--device", "phone"])
    assert res.exit_code == 2 and "choose host or cpu-arm" in res.output


def test_select_artifacts_skips_coreml_unless_asked():
    metas = [ArtifactMeta(t, p, f"exports/{t}/x", "dipn", (), (), 0) for t, p in (("onnx", "fp32"), ("coreml", "fp32"), ("mnn", "fp16"))]
    arm = emulation.ArmProvider()
    keep, skipped = select_artifacts(metas, None, arm)
    assert [m.target for m in keep] == ["onnx", "mnn"]
    assert skipped == [{"target": "coreml", "precision": "fp32", "why": skipped[0]["why"]}] and "Apple" in skipped[0]["why"]
    with pytest.raises(ConfigError, match="coreml has no runtime on cpu-arm.*use --target onnx,mnn"):
        select_artifacts(metas, ["onnx", "coreml"], arm)
    keep, skipped = select_artifacts(metas, None, HostProvider())
    assert len(keep) == 3 and not skipped


def test_setup_refuses_without_root_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(emulation, "_is_root", lambda: False)
    res = CliRunner().invoke(main, ["devices", "setup", "cpu-arm"], env={emulation.ENV_VAR: str(tmp_path / "c")})
    assert res.exit_code == 2, res.output
    assert "must run as root" in res.output and "root file system" in res.output
    assert not (tmp_path / "c").exists()


def test_setup_reports_an_unreachable_mirror_and_registry(tmp_path, monkeypatch):
    """Nothing listens on 127.0.0.1:9: debootstrap and pip fail fast, and say what to check."""
    if shutil.which("debootstrap") is None or not emulation._is_root():
        pytest.skip("needs debootstrap and root")
    monkeypatch.setenv(emulation.MIRROR_VAR, "http://127.0.0.1:9/debian")
    with pytest.raises(EmulationError, match="reachable") as exc:
        emulation._step_rootfs(tmp_path, shutil.which(emulation.QEMU) or "qemu-aarch64-static")
    assert exc.value.reason == "network" and "127.0.0.1:9" in str(exc.value)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0",
                       "PIP_TIMEOUT": "3", "PIP_NO_CACHE_DIR": "1"}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    with pytest.raises(EmulationError, match="PyPI reachable") as exc:
        emulation._step_wheels(tmp_path, {"numpy": "2.0.0"}, "3.11.2")
    assert exc.value.reason == "network"


def test_platforms_are_every_manylinux_tag_of_bookworms_glibc():
    """pip given ``--platform`` takes exactly those tags: ai-edge-litert 2.3.0's aarch64 wheel is
    manylinux_2_27 only, and a list without that tag finds no wheel for it."""
    assert emulation.GLIBC == (2, 36)
    tags = [t for t in emulation.PLATFORMS if t.startswith("manylinux_2_")]
    assert [int(t.split("_")[2]) for t in tags] == list(range(36, 16, -1))
    assert "manylinux_2_27_aarch64" in emulation.PLATFORMS and "manylinux2014_aarch64" in emulation.PLATFORMS


def test_litert_is_an_optional_wheel_pinned_to_the_host(monkeypatch):
    from importlib import metadata

    pins = emulation.wheel_pins()
    assert list(pins)[:3] == ["numpy", "onnxruntime", "MNN"]
    if importlib_has("ai-edge-litert"):
        assert pins["ai-edge-litert"] == metadata.version("ai-edge-litert")
    real = metadata.version

    def without_litert(dist):
        if dist == "ai-edge-litert":
            raise metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(metadata, "version", without_litert)
    pins_without = emulation.wheel_pins()
    assert "ai-edge-litert" not in pins_without and pins_without["numpy"] == pins["numpy"]
    # an environment built without it: cpu-arm says so for LiteRT, and runs the rest
    env = emulation.Environment(Path("/nonexistent"), Path("/nonexistent"), "qemu-aarch64-static",
                                info={"probe": {"machine": "aarch64", "numpy": "2", "onnxruntime": "1", "MNN": "3"}})  # fmt: skip
    arm = emulation.ArmProvider(env)
    for rt in ("litert", "litert-builtin"):
        why = arm.supports(rt)
        assert "has no ai-edge-litert" in why and "devices setup cpu-arm" in why, why
    assert arm.supports("onnxruntime") is None and arm.supports("mnn-session") is None
    assert get_target("litert").why_not_on(arm) and get_target("onnx").why_not_on(arm) is None


def importlib_has(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_a_cache_of_the_previous_recipe_is_rebuilt_not_reused(tmp_path, monkeypatch):
    """The site of an older recipe (the pins alone, three manylinux tags, no ai-edge-litert) is refused at
    use and rebuilt by setup; the root file system is kept."""
    cache = tmp_path / "c"
    (cache / "site").mkdir(parents=True)
    (cache / "root" / "usr" / "bin").mkdir(parents=True)
    (cache / "root" / emulation.PYTHON).write_text("")
    old_pins = {k: v for k, v in emulation.wheel_pins().items() if k in emulation.WHEELS}
    old_key = hashlib.sha256(json.dumps(old_pins, sort_keys=True).encode()).hexdigest()[:16]
    assert old_key != emulation._recipe_key(emulation.wheel_pins())
    state = {"rootfs": {"suite": emulation.SUITE, "python": "3.11.2"}, "probe": {"machine": "aarch64"},
             "wheels": [f"{k}=={v}" for k, v in old_pins.items()], "wheels_key": old_key}  # fmt: skip
    (cache / "state.json").write_text(json.dumps(state))
    monkeypatch.setattr(emulation.shutil, "which", lambda exe: f"/usr/bin/{exe}")
    with pytest.raises(EmulationError, match="was built for numpy==") as err:
        emulation.environment(cache)
    assert err.value.reason == "setup" and "devices setup cpu-arm" in str(err.value)
    monkeypatch.setattr(emulation, "_is_root", lambda: False)
    monkeypatch.setattr(emulation, "_missing_tools", lambda: [])
    with pytest.raises(EmulationError, match="to build: aarch64 wheels;"):
        emulation.setup(cache)


def test_cpuinfo_replaces_a_proc_symlink_instead_of_writing_through_it(tmp_path):
    (tmp_path / "proc").symlink_to(tmp_path / "elsewhere")
    path = emulation.write_cpuinfo(tmp_path, cpus=2)
    assert not (tmp_path / "proc").is_symlink() and not (tmp_path / "elsewhere").exists()
    text = path.read_text()
    assert text.count("processor\t:") == 2 and "CPU part\t: 0xd0b" in text and "asimdhp" in text


# -- the emulated device ------------------------------------------------------------------------------


def _arm_parity(path, targets: str):
    res = CliRunner().invoke(main, ["parity", str(path), "--target", targets, "--device", "cpu-arm", "--json"])
    assert res.exit_code in (0, 1), res.output[-2000:]
    return res.exit_code, json.loads(res.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_parity_on_cpu_arm_passes_and_runs_on_aarch64(arm_env, bundles, tmp_path, name):
    junit = tmp_path / "arm.xml"
    res = CliRunner().invoke(main, ["parity", str(bundles[name]), "--target", "onnx,mnn", "--device", "cpu-arm", "--json",
                                    "--junit", str(junit)])  # fmt: skip
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.stdout)
    assert report["passed"] and report["device"] == "cpu-arm"
    rows = [r for r in report["results"] if r["target"] != "torch"]
    assert {r["target"] for r in rows} == {"onnx", "mnn"}
    assert all(r["arch"] == "aarch64" for r in rows), [r["arch"] for r in rows]
    assert all(r["arch"] == platform.machine() for r in report["results"] if r["target"] == "torch")
    assert all("cortex-a76" in r["runtime"] for r in rows)
    for r in rows:
        # the ARM kernels are not the host's: different, but within the table's fp32 bound for aarch64
        # (MNN's approximate sigmoid / tanh / exp there: 1e-4 on probabilities, 5e-4 on logits; onnxruntime:
        # the fp32 bounds)
        tol = tolerance(r["target"], r["precision"], arch="aarch64")
        assert tol.prob_abs <= 1e-4 and tol.logit_abs <= 5e-4
        assert 0 <= r["metrics"]["prob_max_abs"] <= tol.prob_abs and r["metrics"]["logit_max_abs"] <= tol.logit_abs, r
    assert 'name="arch" value="aarch64"' in junit.read_text()


@pytest.mark.slow
def test_arm_only_failure_while_loop_gru_at_low_precision(arm_env, bundles, tmp_path):
    """MNN fp16 (precision=low) with the GRUs converted to While loops: passes on the host, where
    low precision computes in fp32, and fails on aarch64, where the loop runs in fp16 arithmetic.
    The same fp16 artifact with the native RNN op passes on aarch64: it is the loop, not fp16."""
    loop = fresh_copy(bundles, "dipn_raw", tmp_path / "loop")
    native = fresh_copy(bundles, "dipn_raw", tmp_path / "native")
    export_bundle(loop, "mnn", "fp16", {"rnn": "while-loop"})
    export_bundle(native, "mnn", "fp16")

    host = run_parity(loop, ["mnn"])
    assert host["passed"], [r["reasons"] for r in host["results"]]

    code, arm = _arm_parity(loop, "mnn")
    assert code == 1 and not arm["passed"]
    rows = [r for r in arm["results"] if r["target"] == "mnn"]
    assert rows and all(r["arch"] == "aarch64" and not r["passed"] for r in rows), [(r["arch"], r["reasons"]) for r in rows]
    worst = max(r["metrics"]["logit_max_abs"] for r in rows)
    assert worst > 2e-2, worst  # past the fp16 bound, not a rounding-level miss

    # the control: fp16 arithmetic with the native RNN op stays inside the fp16 value bounds. (Its
    # ranking is not asserted: on this 24-row golden set one swapped pair moves the AUC by > 2e-3.)
    _, arm_native = _arm_parity(native, "mnn")
    native_rows = [r for r in arm_native["results"] if r["target"] == "mnn"]
    assert native_rows and all(r["arch"] == "aarch64" for r in native_rows)
    value_breaches = [x for r in native_rows for x in r["reasons"] if "differ" in x or "non-finite" in x]
    assert not value_breaches, value_breaches
    native_worst = max(r["metrics"]["logit_max_abs"] for r in native_rows)
    assert native_worst < worst / 3, (native_worst, worst)

