"""Calibrate the device profiles on published fp32 one-thread phone latencies, and check them.

    python benchmarks/calibrate_devices.py --json > fit.json        # 2 passes, ~8 min on a busy 2-vCPU host
    python benchmarks/calibrate_devices.py --json --write-results   # + docs/results/calibrate_devices.{json,md} (devices.md shows it)
    python benchmarks/calibrate_devices.py --markdown fit.json      # the result tables of a --json output
    python benchmarks/calibrate_devices.py --json --contend         # + one pass beside a busy loop on the same CPU
    python benchmarks/calibrate_devices.py --json --passes 0 --from-json a.json b.json   # pool earlier passes

For every architecture in ``edgeintent/runtime_sim/calibration/published.py`` (mobilenet_v2, mobilenet_v3
large/small, squeezenet 1.1, shufflenet_v2 x1.0, resnet18/50; random weights; batch 1) it exports
ONNX (opset 17, the TorchScript exporter as ``exporters/onnx.py``) and MNN (``exporters/mnn.convert_onnx``,
the ``_tools`` converter) and times both here with bench's measuring process (``runtimes/child.py``: a
fresh process pinned to one CPU, one thread, ``--runs`` steady runs), each model between two runs of
the host calibration block (``runtime_sim/host.py``). The statistic (``--stat``) is the minimum
process CPU time, as bench projects; the median and the wall time are kept in the JSON. Passes are
pooled by geometric mean of model time ÷ the calibration block around it.

Then, per profile, it fits ``calib_ms`` on the calibration rows of the profile's runtime (MNN) and
reports projected / published on the check rows, which the fit never saw: pooled, and pass by pass
(``check_range_all_passes``, the range ``devices.py`` records). It also reports the same rows under
the constants ``devices.py`` holds now, under Geekbench 5 alone, and with onnxruntime's host times.

``--contend`` repeats the calibration block and the timings with a busy loop pinned to the same CPU
(this process starts and ends it) and reports the projections beside the last quiet pass's, in CPU
time (what bench projects) and in wall time.
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

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)

from edgeintent.runtime_sim import devices as D  # noqa: E402
from edgeintent.runtime_sim import host as H  # noqa: E402
from edgeintent.runtime_sim.calibration import fit as F  # noqa: E402
from edgeintent.runtime_sim.calibration.published import CALIBRATION, CHECK, TABLE  # noqa: E402
from edgeintent.runtimes import Artifact  # noqa: E402
from edgeintent.runtimes.child import describe_exit, run_child  # noqa: E402
from edgeintent.runtimes.limits import pick_cpus  # noqa: E402

PROFILES = ("cpu-arm", "cpu-arm-low")
CAL_KEYS = ("calib_ms_all", "calib_ms", "calib_wall_ms_all", "calib_wall_ms", "calib_min_ms_all", "calib_min_ms")
#: --stat → (model time, calibration block around it, the pass's calibration block): process CPU time,
#: which other processes taking turns on the core leave alone; its median, or its minimum (what is
#: left when a neighbour on the same physical core also slows the instructions down)
STATS = {"p50": ("cpu_p50_ms", "calib_ms_around", "calib_ms"), "min": ("cpu_min_ms", "calib_min_ms_around", "calib_min_ms")}
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
    return {"cpu_p50_ms": float(np.median(c)), "cpu_min_ms": float(c.min()), "p50_ms": float(np.median(t)),
            "min_ms": float(t.min()), "runs": int(t.size),
            "runtime_version": res["runtime_version"]}  # fmt: skip


def memory_shares(files: dict, work: Path, runs: int = 10) -> dict[str, dict]:
    """Each model's data-movement share ``m`` from an onnxruntime profile (what bench computes for a bundle)."""
    from edgeintent.runtime_sim.project import memory_share

    out = {}
    for k, paths in files.items():
        hw = int(k.split("@")[1])
        feeds = work / f"feeds{hw}.npz"
        if not feeds.exists():
            np.savez(feeds, input=np.random.default_rng(0).standard_normal((1, 3, hw, hw)).astype(np.float32))
        art = Artifact("onnxruntime", str(paths["onnx"]), "fp32", ("input",), ("logits",))
        job = {"kind": "model", "artifact": asdict(art), "threads": 1, "cpus": list(pick_cpus(1)), "memory_bytes": None,
               "runs": 1, "warmup": 0, "feeds": str(feeds), "profile": True, "profile_runs": runs}  # fmt: skip
        code, res, stage = run_child(job, work, f"{k}.profile", 1)
        if code != 0 or not res or "error" in res:
            raise SystemExit(f"{k} profile failed at the {stage} stage: {(res or {}).get('error', describe_exit(code))}")
        m, how = memory_share(res["op_profile"])
        out[k] = {"m": m, "from": how}
    return out


def bandwidth_check(profile: str, host_ms: dict, c_ref: float, calib_ms: float, shares: dict, host_bw: float) -> list[dict]:
    """projected / published per row with the data-movement share projected at the device's bandwidth ratio
    (uncapped) and at min(bandwidth, speed) (bench's)."""
    from edgeintent.runtime_sim.project import factor

    dev = D.get_device(profile)
    speed, bw = c_ref / calib_ms, dev.bandwidth_gbs / host_bw
    out = []
    for r in (r for r in TABLE if r.profile == profile):
        m = shares[F.key(r)]["m"]
        t = host_ms[F.key(r)]
        out.append({"arch": r.arch, "input": r.input_hw, "soc": r.soc, "m": m, "speed": speed, "bandwidth": bw,
                    "ratio_capped": t * factor(speed, bw, m) / r.ms,
                    "ratio_uncapped": t * ((1 - m) / speed + m / bw) / r.ms})  # fmt: skip
    return out


def measure(files: dict, runtimes: list[str], runs: int, warmup: int, work: Path, say) -> dict:
    """Every model in every runtime, each between two runs of the host calibration block.

    The machine is shared: the fit uses process CPU time (model and calibration block alike), which
    other processes taking turns on the core leave unchanged; wall-clock medians are reported beside it.
    """
    calib, wall, cmin = [], [], []

    def calibrate() -> None:
        c = H.run_calibration()
        calib.append(c["cpu_p50_ms"])
        cmin.append(c["cpu_min_ms"])
        wall.append(c["p50_ms"])

    calibrate()
    times: dict[str, dict[str, dict]] = {rt: {} for rt in runtimes}
    around: dict[str, float] = {}
    around_min: dict[str, float] = {}
    for k, paths in files.items():
        hw = int(k.split("@")[1])
        for rt in runtimes:
            times[rt][k] = time_artifact(paths[rt], rt, hw, runs, warmup, work)
        calibrate()
        around[k] = F.geomean(calib[-2:])
        around_min[k] = F.geomean(cmin[-2:])
        say(f"  {k:26s} " + "  ".join(f"{rt} cpu p50 {times[rt][k]['cpu_p50_ms']:8.2f} ms (wall {times[rt][k]['p50_ms']:8.2f})" for rt in runtimes)
            + f"  calibration block around {around[k]:.3f} ms")
    ref = float(np.median(calib))
    for rt in runtimes:
        for k, v in times[rt].items():
            v["calib_ms_around"] = around[k]
            v["calib_min_ms_around"] = around_min[k]
    return {"calib_ms_all": calib, "calib_ms": ref, "calib_wall_ms_all": wall, "calib_wall_ms": float(np.median(wall)),
            "calib_min_ms_all": cmin, "calib_min_ms": float(np.median(cmin)), "times": times}  # fmt: skip


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


def table(out: dict) -> str:
    """The result tables of devices.md from one ``--json`` output."""
    lines = []
    h = out["host"]
    lines.append(f"Host: {h['cpu']} ({h['family_model']}) @ {h['mhz']:.0f} MHz, {h['simd']}; calibration block "
                 f"{out['host_calibration']['calib_ms']:.2f} ms CPU time; {out['n_passes']} passes pooled (geometric mean); MNN at one thread.\n")
    for p, res in out["profiles"].items():
        lines.append(f"**{p}**: fitted `calib_ms` = {res['calib_ms']:.2f} (speed {res['speed_vs_this_host']:.3f} of this host).\n")
        lines.append("| role | model | phone (source) | published ms | host MNN ms | projected ms | projected / published | Geekbench-only |")
        lines.append("|---|---|---|---|---|---|---|---|")
        gb = {(g["arch"], g["input"], g["soc"]): g["ratio"] for g in res["geekbench_only"]["rows"]}
        for r in res["calibration_rows"] + res["check_rows"]:
            lines.append(f"| {r['role']} | {r['arch']} ({r['input']}) | {r['soc']} | {r['published_ms']:.2f} | {r['host_ms']:.2f} | "
                         f"{r['projected_ms']:.2f} | **{r['ratio']:.2f}** | {gb[(r['arch'], r['input'], r['soc'])]:.2f} |")
        c, g, rng = res["check_spread"], res["geekbench_only"], res["check_range_all_passes"]
        lines.append(f"\nCheck rows: {c['min']:.2f}–{c['max']:.2f} (geometric mean {c['geomean']:.2f}, {c['n']} rows); "
                     f"{rng[0]:.2f}–{rng[1]:.2f} over the {out['n_passes']} passes one by one. "
                     f"Geekbench 5 alone (speed {g['speed']:.3f}): {g['min']:.2f}–{g['max']:.2f} (geometric mean {g['geomean']:.2f}).\n")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _results.add_args(ap)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runtimes", default="mnn,onnx", help="comma list; the first is the one fitted (the profiles' runtime)")
    ap.add_argument("--contend", action="store_true", help="repeat on a host slowed by a busy loop on the same CPU")
    ap.add_argument("--cache", help="keep the exported models here (default: a temporary directory)")
    ap.add_argument("--markdown", help="read a --json output and print devices.md's result tables")
    ap.add_argument("--stat", choices=sorted(STATS), default="min", help="the host statistic fitted (process CPU time)")
    ap.add_argument("--passes", type=int, default=2, help="quiet measurement passes, pooled (geometric mean) for the fit")
    ap.add_argument("--from-json", nargs="*", help="pool the quiet passes of earlier --json outputs (with --passes 0: no new run)")
    a = ap.parse_args()
    if a.markdown:
        print(table(json.loads(Path(a.markdown).read_text())))
        return
    say = (lambda *_: None) if a.json else print
    runtimes = a.runtimes.split(",")
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731

    passes, contended, record, shares = [], None, None, None
    for f in a.from_json or []:  # earlier outputs' quiet passes, pooled with any run now
        prev = json.loads(Path(f).read_text())
        record = record or H.HostRecord(**{k: v for k, v in prev["host"].items() if k != "busy"})
        passes += prev.get("passes") or [{"host_calibration": prev["host_calibration"], "times": prev["host_times"]}]
        shares = prev.get("memory_shares") or shares
        if "contended" in prev:  # its busy-loop pass, compared with its own last quiet pass
            contended = {**prev["contended"]["host_calibration"], "times": prev["contended"]["host_times"]}
    if a.passes:
        with tempfile.TemporaryDirectory(prefix="edgeintent-calib-") as tmp:
            cache = Path(a.cache) if a.cache else Path(tmp)
            cache.mkdir(parents=True, exist_ok=True)
            work = Path(tmp) / "work"
            work.mkdir()
            files = {}
            for arch, hw in sorted({(r.arch, r.input_hw) for r in TABLE}):
                log(f"export {arch}@{hw}")
                files[f"{arch}@{hw}"] = export(arch, hw, cache)
            record = H.measure_host()
            log(f"host: {record.label}")
            for i in range(a.passes):
                log(f"pass {i + 1} of {a.passes}")
                m = measure(files, runtimes, a.runs, a.warmup, work, log)
                passes.append({"host_calibration": {k: m[k] for k in CAL_KEYS}, "times": m["times"]})
            log("onnxruntime profiles: the data-movement share of each model")
            shares = memory_shares(files, work)
            if a.contend:
                log("the same on a host slowed by a busy loop on the same CPU")
                with BusyLoop(pick_cpus(1)[0]):
                    contended = measure(files, runtimes, a.runs, a.warmup, work, log)
    if not passes:
        raise SystemExit("nothing measured: give --passes ≥ 1 or --from-json")

    fitted_rt = runtimes[0]
    field, around, cal_key = STATS[a.stat]
    c_ref = F.geomean(p["host_calibration"][cal_key] for p in passes)

    def normalised(pass_: dict, rt: str) -> dict[str, float]:
        """Host ms of one pass on the common calibration scale: t × c_ref / calibration block around it."""
        return {k: v[field] * c_ref / v[around] for k, v in pass_["times"][rt].items()}

    pooled = {rt: {k: F.geomean(normalised(ps, rt)[k] for ps in passes) for k in passes[0]["times"][rt]} for rt in runtimes}
    out: dict = {"host": record.as_dict(), "calibration_models": list(CALIBRATION), "check_models": list(CHECK),
                 "fitted_runtime": fitted_rt, "statistic": field, "runs": a.runs, "warmup": a.warmup, "n_passes": len(passes),
                 "host_calibration": {"calib_ms": c_ref, "per_pass": [p["host_calibration"][cal_key] for p in passes]},
                 "host_times": pooled, "passes": passes, "memory_shares": shares, "profiles": {}}  # fmt: skip
    for p in PROFILES:
        rows = [r for r in TABLE if r.profile == p]
        res = F.fit_profile(p, list(TABLE), pooled[fitted_rt], c_ref)
        # every pass's check rows under the pooled constant: the range the profile records (devices.py)
        per_pass = [F.spread([r for r in F.ratios(rows, normalised(ps, fitted_rt), c_ref, res["calib_ms"]) if r["role"] == "check"])
                    for ps in passes]  # fmt: skip
        res["check_per_pass"] = per_pass
        res["check_range_all_passes"] = [min(x["min"] for x in per_pass), max(x["max"] for x in per_pass)]
        for rt in runtimes[1:]:  # the same constant applied to another runtime's host times
            rs = F.ratios(rows, pooled[rt], c_ref, res["calib_ms"])
            res[f"{rt}_rows_under_{fitted_rt}_constant"] = [{k: r[k] for k in ("arch", "input", "role", "ratio")} for r in rs]
        if D.get_device(p).calib_ms is not None:
            res["devices_py_now"] = constants_check(p, pooled[fitted_rt], c_ref, D.get_device(p).calib_ms)
        res["geekbench_only"] = geekbench_check(p, pooled[fitted_rt])
        if shares:
            res["bandwidth_term"] = bandwidth_check(p, pooled[fitted_rt], c_ref, res["calib_ms"], shares, record.bandwidth_gbs)
        if contended is not None:  # the fitted constant, projected from each run's own host times and calibration block
            quiet = passes[-1]
            q_cal, c_cal = quiet["host_calibration"], contended
            res["two_hosts"] = {"slowdown_of_calibration_block_wall": c_cal["calib_wall_ms"] / q_cal["calib_wall_ms"]}
            for label, fld, cq, cc in ((f"cpu_time_{a.stat}", field, q_cal[cal_key], c_cal[cal_key]),
                                       ("wall_p50", "p50_ms", q_cal["calib_wall_ms"], c_cal["calib_wall_ms"])):
                rq = F.ratios(rows, {k: v[fld] for k, v in quiet["times"][fitted_rt].items()}, cq, res["calib_ms"])
                rc = F.ratios(rows, {k: v[fld] for k, v in contended["times"][fitted_rt].items()}, cc, res["calib_ms"])
                agree = [c["projected_ms"] / q["projected_ms"] for q, c in zip(rq, rc, strict=True)]
                res["two_hosts"][label] = {"rows": [{"arch": q["arch"], "input": q["input"], "host_slowdown": c["host_ms"] / q["host_ms"],
                                                     "projection_busy_over_quiet": x} for q, c, x in zip(rq, rc, agree, strict=True)],
                                           "min": min(agree), "max": max(agree)}  # fmt: skip
        out["profiles"][p] = res
    if contended is not None:
        out["contended"] = {"host_calibration": {k: contended[k] for k in CAL_KEYS}, "host_times": contended["times"]}

    _results.emit("calibrate_devices", out, a, table=table)
    if a.json:
        return
    for p, res in out["profiles"].items():
        print(f"\n{p}: calib_ms = {res['calib_ms']:.2f} (speed vs this host {res['speed_vs_this_host']:.3f})")
        for r in res["calibration_rows"] + res["check_rows"]:
            print(f"  {r['role']:11s} {r['arch']:20s} {r['soc']:32s} published {r['published_ms']:7.2f}  "
                  f"projected {r['projected_ms']:7.2f}  ratio {r['ratio']:.3f}")
        s = res["check_spread"]
        print(f"  check ratios: {s['min']:.3f}–{s['max']:.3f} (geomean {s['geomean']:.3f}, n={s['n']})")
        if "two_hosts" in res:
            for lab in (f"cpu_time_{a.stat}", "wall_p50"):
                t = res["two_hosts"][lab]
                print(f"  busy host / quiet host projections ({lab}): {t['min']:.3f}–{t['max']:.3f}")


if __name__ == "__main__":
    main()
