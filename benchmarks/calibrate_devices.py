"""Calibrate the device profiles on published fp32 one-thread phone latencies, and check them.

    python benchmarks/calibrate_devices.py --json                 # ~3 min on one core
    python benchmarks/calibrate_devices.py --json --contend       # + the same run on a host made 2x slower

For every architecture in ``edgeintent/runtime_sim/calibration/published.py`` (mobilenet_v2, mobilenet_v3
large/small, squeezenet 1.1, shufflenet_v2 x1.0, resnet18/50; random weights; batch 1) it exports
ONNX (opset 17, the TorchScript exporter as ``exporters/onnx.py``) and MNN (``exporters/mnn.convert_onnx``,
the ``_tools`` converter) and times both here with bench's measuring process (``runtimes/child.py``:
a fresh process pinned to one CPU, one thread, median of ``--runs`` in process CPU time, wall time
beside it), between runs of the host calibration block (``runtime_sim/host.py``). Then, per profile, it fits ``calib_ms`` on the calibration rows of
the profile's runtime (MNN) and reports projected / published on the check rows, which the fit never
saw; and the same ratios under the constants ``devices.py`` holds now.

``--contend`` repeats the host calibration and the timings with a busy loop pinned to the same CPU
and reports how far its projections are from the first pass's, in CPU time (what the fit uses) and
in wall time (where the busy loop makes the host about half as fast).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edgeintent.runtime_sim import devices as D  # noqa: E402
from edgeintent.runtime_sim import host as H  # noqa: E402
from edgeintent.runtime_sim.calibration import fit as F  # noqa: E402
from edgeintent.runtime_sim.calibration.published import CALIBRATION, CHECK, TABLE  # noqa: E402
from edgeintent.runtimes import Artifact  # noqa: E402
from edgeintent.runtimes.child import describe_exit, run_child  # noqa: E402
from edgeintent.runtimes.limits import pick_cpus  # noqa: E402

PROFILES = ("cpu-arm", "cpu-arm-low")
TIME = "cpu_p50_ms"  # the host time the fit and the checks use: process CPU time, which other processes leave alone
RUNTIMES = {"mnn": ("mnn-session", "normal", ".mnn"), "onnx": ("onnxruntime", "fp32", ".onnx")}


def export(arch: str, hw: int, out: Path) -> dict[str, Path]:
    """``arch`` at ``hw``x``hw`` as ONNX (opset 17) and MNN fp32 files under ``out``."""
    import onnx
    import torch

    from edgeintent.exporters.mnn import convert_onnx
    from edgeintent.exporters.onnx import OPSET, serialize
    from edgeintent.runtime_sim.calibration.archs import build

    stem = out / f"{arch}@{hw}"
    onnx_path, mnn_path = stem.with_suffix(".onnx"), stem.with_suffix(".mnn")
    if not onnx_path.exists():
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(build(arch), torch.zeros(1, 3, hw, hw), buf, input_names=["input"], output_names=["logits"],
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)  # fmt: skip
        proto = onnx.load_from_string(buf.getvalue())
        onnx.checker.check_model(proto)
        onnx_path.write_bytes(serialize(proto))
    if not mnn_path.exists():
        convert_onnx(onnx_path, mnn_path)
    return {"onnx": onnx_path, "mnn": mnn_path}


def time_artifact(path: Path, runtime: str, hw: int, runs: int, warmup: int, work: Path) -> dict:
    api, precision, _ = RUNTIMES[runtime]
    feeds = work / f"feeds{hw}.npz"
    if not feeds.exists():
        np.savez(feeds, input=np.random.default_rng(0).standard_normal((1, 3, hw, hw)).astype(np.float32))
    art = Artifact(api, str(path), precision, ("input",), ("logits",))
    job = {"kind": "model", "artifact": asdict(art), "threads": 1, "cpus": list(pick_cpus(1)), "memory_bytes": None,
           "runs": runs, "warmup": warmup, "feeds": str(feeds)}  # fmt: skip
    code, res, stage = run_child(job, work, f"{path.name}.{runtime}", 1)
    if code != 0 or not res or "error" in res:
        raise SystemExit(f"{path.name} on {runtime} failed at the {stage} stage: {(res or {}).get('error', describe_exit(code))}")
    t, c = np.asarray(res["times_ms"]), np.asarray(res["cpu_times_ms"])
    return {"cpu_p50_ms": float(np.median(c)), "p50_ms": float(np.median(t)), "min_ms": float(t.min()), "runs": int(t.size),
            "runtime_version": res["runtime_version"]}  # fmt: skip


def measure(files: dict, runtimes: list[str], runs: int, warmup: int, work: Path, say) -> dict:
    """Every model in every runtime, each between two runs of the host calibration block.

    The machine is shared: the fit uses process CPU time (model and calibration block alike), which
    other processes taking turns on the core leave unchanged; wall-clock medians are reported beside it.
    """
    calib, wall = [], []

    def calibrate() -> None:
        c, w = H.run_calibration()
        calib.append(c)
        wall.append(w)

    calibrate()
    times: dict[str, dict[str, dict]] = {rt: {} for rt in runtimes}
    around: dict[str, float] = {}
    for k, paths in files.items():
        hw = int(k.split("@")[1])
        for rt in runtimes:
            times[rt][k] = time_artifact(paths[rt], rt, hw, runs, warmup, work)
        calibrate()
        around[k] = F.geomean(calib[-2:])
        say(f"  {k:26s} " + "  ".join(f"{rt} cpu p50 {times[rt][k]['cpu_p50_ms']:8.2f} ms (wall {times[rt][k]['p50_ms']:8.2f})" for rt in runtimes)
            + f"  calibration block around {around[k]:.3f} ms")
    ref = float(np.median(calib))
    for rt in runtimes:
        for k, v in times[rt].items():
            v["cpu_p50_ms_normalised"] = v["cpu_p50_ms"] * ref / around[k]
            v["calib_ms_around"] = around[k]
    return {"calib_ms_all": calib, "calib_ms": ref, "calib_wall_ms_all": wall, "calib_wall_ms": float(np.median(wall)),
            "times": times}  # fmt: skip


class BusyLoop:
    """A process spinning on ``cpu`` (started here, ended here by its pid): a host about half as fast."""

    def __init__(self, cpu: int) -> None:
        code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
        self.proc = subprocess.Popen([sys.executable, "-c", code])

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


def constants_check(profile: str, host_ms: dict, calib_ms: float, device_calib_ms: float) -> dict:
    """projected / published on every row of ``profile`` under the constant ``device_calib_ms``."""
    rows = [r for r in TABLE if r.profile == profile]
    rs = F.ratios(rows, host_ms, calib_ms, device_calib_ms)
    return {"calib_ms": device_calib_ms, "rows": [{k: r[k] for k in ("arch", "input", "role", "soc", "ratio")} for r in rs],
            "check_spread": F.spread([r for r in rs if r["role"] == "check"]), "all_spread": F.spread(rs)}  # fmt: skip


def geekbench_check(profile: str, host_ms: dict) -> dict:
    """projected / published under Geekbench 5 alone (speed = device GB5 / this host's GB5 estimate, devices.md)."""
    dev = D.get_device(profile)
    speed = dev.gb5_single / D.HOST_GB5_SINGLE
    rs = [r.ms for r in TABLE if r.profile == profile]
    ratios = [host_ms[F.key(r)] / speed / r.ms for r in TABLE if r.profile == profile]
    return {"speed": speed, "rows": [{"arch": r.arch, "input": r.input_hw, "soc": r.soc, "ratio": q}
                                     for r, q in zip([r for r in TABLE if r.profile == profile], ratios, strict=True)],
            "min": min(ratios), "max": max(ratios), "geomean": F.geomean(ratios), "n": len(rs)}  # fmt: skip


def markdown(out: dict) -> str:
    """The result tables of devices.md from one ``--json`` output."""
    lines = []
    h = out["host"]
    lines.append(f"Host: {h['cpu']} ({h['family_model']}) @ {h['mhz']:.0f} MHz, {h['simd']}; calibration block "
                 f"{out['host_calibration']['calib_ms']:.2f} ms CPU time (median over the run); MNN and onnxruntime at one thread.\n")
    for p, res in out["profiles"].items():
        lines.append(f"**{p}**: fitted `calib_ms` = {res['calib_ms']:.2f} (speed {res['speed_vs_this_host']:.3f} of this host).\n")
        lines.append("| role | model | phone (source) | published ms | host MNN ms | projected ms | projected / published | Geekbench-only |")
        lines.append("|---|---|---|---|---|---|---|---|")
        gb = {(g["arch"], g["input"], g["soc"]): g["ratio"] for g in res["geekbench_only"]["rows"]}
        for r in res["calibration_rows"] + res["check_rows"]:
            lines.append(f"| {r['role']} | {r['arch']} ({r['input']}) | {r['soc']} | {r['published_ms']:.2f} | {r['host_ms']:.2f} | "
                         f"{r['projected_ms']:.2f} | **{r['ratio']:.2f}** | {gb[(r['arch'], r['input'], r['soc'])]:.2f} |")
        c, g = res["check_spread"], res["geekbench_only"]
        lines.append(f"\nCheck rows: {c['min']:.2f}–{c['max']:.2f} (geometric mean {c['geomean']:.2f}, {c['n']} rows). "
                     f"Geekbench 5 alone (speed {g['speed']:.3f}): {g['min']:.2f}–{g['max']:.2f} (geometric mean {g['geomean']:.2f}).\n")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runtimes", default="mnn,onnx", help="comma list; the first is the one fitted (the profiles' runtime)")
    ap.add_argument("--contend", action="store_true", help="repeat on a host slowed by a busy loop on the same CPU")
    ap.add_argument("--cache", help="keep the exported models here (default: a temporary directory)")
    ap.add_argument("--markdown", help="read a --json output and print devices.md's result tables")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text())))
        return
    say = (lambda *_: None) if a.json else print
    runtimes = a.runtimes.split(",")
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="edgeintent-calib-") as tmp:
        cache = Path(a.cache) if a.cache else Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tmp) / "work"
        work.mkdir()
        keys = sorted({(r.arch, r.input_hw) for r in TABLE})
        files = {}
        for arch, hw in keys:
            log(f"export {arch}@{hw}")
            files[f"{arch}@{hw}"] = export(arch, hw, cache)
        record = H.measure_host()
        log(f"host: {record.label}")
        quiet = measure(files, runtimes, a.runs, a.warmup, work, log)
        contended = None
        if a.contend:
            log("the same on a host slowed by a busy loop on the same CPU")
            with BusyLoop(pick_cpus(1)[0]):
                contended = measure(files, runtimes, a.runs, a.warmup, work, log)

    fitted_rt = runtimes[0]
    out: dict = {"host": record.as_dict(), "calibration_models": list(CALIBRATION), "check_models": list(CHECK),
                 "fitted_runtime": fitted_rt, "runs": a.runs, "warmup": a.warmup,
                 "host_calibration": {k: quiet[k] for k in ("calib_ms_all", "calib_ms", "calib_wall_ms_all", "calib_wall_ms")},
                 "host_times": quiet["times"], "profiles": {}}  # fmt: skip
    for p in PROFILES:
        res = F.fit_profile(p, list(TABLE), {k: v[TIME] for k, v in quiet["times"][fitted_rt].items()}, quiet["calib_ms"])
        for rt in runtimes[1:]:  # the same constant applied to another runtime's host times
            host_rt = {k: v[TIME] for k, v in quiet["times"][rt].items()}
            rows = [r for r in TABLE if r.profile == p]
            rs = F.ratios(rows, host_rt, quiet["calib_ms"], res["calib_ms"])
            res[f"{rt}_rows_under_{fitted_rt}_constant"] = [{k: r[k] for k in ("arch", "input", "role", "ratio")} for r in rs]
        host_fit = {k: v[TIME] for k, v in quiet["times"][fitted_rt].items()}
        if D.get_device(p).calib_ms is not None:
            res["devices_py_now"] = constants_check(p, host_fit, quiet["calib_ms"], D.get_device(p).calib_ms)
        res["geekbench_only"] = geekbench_check(p, host_fit)
        if contended is not None:  # the quiet fit's constant, projected from each pass's own host times and calibration median
            rows = [r for r in TABLE if r.profile == p]
            res["two_hosts"] = {"slowdown_of_calibration_block_wall": contended["calib_wall_ms"] / quiet["calib_wall_ms"]}
            for label, field, cq, cc in (("cpu_time", "cpu_p50_ms", quiet["calib_ms"], contended["calib_ms"]),
                                         ("wall", "p50_ms", quiet["calib_wall_ms"], contended["calib_wall_ms"])):
                rq = F.ratios(rows, {k: v[field] for k, v in quiet["times"][fitted_rt].items()}, cq, res["calib_ms"])
                rc = F.ratios(rows, {k: v[field] for k, v in contended["times"][fitted_rt].items()}, cc, res["calib_ms"])
                agree = [c["projected_ms"] / q["projected_ms"] for q, c in zip(rq, rc, strict=True)]
                res["two_hosts"][label] = {"rows": [{"arch": q["arch"], "input": q["input"], "host_slowdown": c["host_ms"] / q["host_ms"],
                                                     "projection_slowed_over_quiet": a} for q, c, a in zip(rq, rc, agree, strict=True)],
                                           "min": min(agree), "max": max(agree)}  # fmt: skip
        out["profiles"][p] = res
    if contended is not None:
        out["contended"] = {"host_calibration": {k: contended[k] for k in ("calib_ms_all", "calib_ms", "calib_wall_ms_all", "calib_wall_ms")},
                            "host_times": contended["times"]}  # fmt: skip

    if a.json:
        print(json.dumps(out, indent=2))
        return
    for p, res in out["profiles"].items():
        print(f"\n{p}: calib_ms = {res['calib_ms']:.2f} (speed vs this host {res['speed_vs_this_host']:.3f})")
        for r in res["calibration_rows"] + res["check_rows"]:
            print(f"  {r['role']:11s} {r['arch']:20s} {r['soc']:32s} published {r['published_ms']:7.2f}  "
                  f"projected {r['projected_ms']:7.2f}  ratio {r['ratio']:.3f}")
        s = res["check_spread"]
        print(f"  check ratios: {s['min']:.3f}–{s['max']:.3f} (geomean {s['geomean']:.3f}, n={s['n']})")
        if "two_hosts" in res:
            for lab in ("cpu_time", "wall"):
                t = res["two_hosts"][lab]
                print(f"  busy host / quiet host projections ({lab}): {t['min']:.3f}–{t['max']:.3f}")


if __name__ == "__main__":
    main()
