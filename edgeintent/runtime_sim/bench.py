"""``edgeintent bench``: every exported artifact in its real runtime, on this host, under a device's limits.

For one realistic request (a recorded window, ``features.request.pick_request``) it measures, each in a
fresh child process pinned and capped like the device (``runtimes/limits.py``, ``runtimes/child.py``):
the featurizer, the torch eager reference and every exported artifact that has a timed runtime here,
opened the way its target says (``Target.artifact``). CoreML packages run only through the MIL
reference, which is functional: their rows say "not timed". Host figures are labelled "measured on
host under DEVICE limits"; device figures "projected on DEVICE" (``project.py``). The status column
reads a parity report handed in (``run_bench(..., parity_report=...)``); bench never runs parity.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeintent.errors import BenchError, ConfigError, MemoryBudgetError
from edgeintent.runtime_sim import project
from edgeintent.runtime_sim.devices import DeviceProfile, get_device
from edgeintent.runtime_sim.host import host_record
from edgeintent.runtimes.limits import pick_cpus
from edgeintent.runtimes import RUNTIMES, Artifact
from edgeintent.runtimes.child import CALLGRIND_ARGS, CALLGRIND_ENV, describe_exit, run_child

SCHEMA = "edgeintent.bench/1"
CHILD_TIMEOUT_S = 900
#: the C kit's featurizer takes microseconds: at least this many timed runs
KIT_RUNS = 2000




@dataclass(frozen=True)
class BenchConfig:
    device: str = "cpu-arm"
    targets: tuple[str, ...] | None = None  # None: every exported target
    runs: int = 200
    warmup: int = 20
    memory_mb: float | None = None  # override the profile's budget
    deterministic: bool = False
    deterministic_runs: int = 200
    deterministic_warmup: int = 50  # lazy initialisation and arena growth stay out of the counted loop
    request_source: str = "sim:200:7"
    profile_runs: int = 100

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.deterministic_runs < 1:
            raise ConfigError("--runs must be ≥ 1 and the warm-up ≥ 0")


def stats(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms, np.float64)
    return {"runs": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "min_ms": float(a.min()),
            "std_ms": float(a.std())}  # fmt: skip


class Bench:
    def __init__(self, bundle_dir, cfg: BenchConfig, say: Callable[[str], None] | None = None) -> None:
        from edgeintent.toolkit.models.exportable import torch_model
        from edgeintent.toolkit.bundle import load_bundle
        from edgeintent.toolkit.bundle import load_model

        self.bundle_dir = Path(bundle_dir)
        self.cfg = cfg
        self.say = say or (lambda *_: None)
        self.device: DeviceProfile = get_device(cfg.device)
        self.bundle = load_bundle(bundle_dir)
        self.model = torch_model(load_model(self.bundle))
        self.budget_mb = float(cfg.memory_mb) if cfg.memory_mb is not None else float(self.device.memory_mb)
        self.cpus = pick_cpus(self.device.threads)

    # -- the request ---------------------------------------------------------------------------
    def _request(self, workdir: Path) -> dict:
        from edgeintent.toolkit.models.exportable import feeds
        from edgeintent.toolkit.features.request import pick_request, write_window
        from edgeintent.toolkit.features import build_samples
        from edgeintent.toolkit.data.sources import load_source

        spec = self.bundle.spec
        streams = [s for s in spec.streams if s in self.model.streams]
        ds = load_source(self.cfg.request_source)
        samples = build_samples(ds.events, spec, ds.decisions, streams=streams)
        req = pick_request(ds.events, samples, spec, streams)
        self._req = req  # the raw events, for the C kit's featurizer row
        one = samples.take(np.array([req.row]))
        f = feeds(self.model, one)
        np.savez(workdir / "feeds.npz", **f)
        write_window(req.tables, workdir / "window")
        spec.save(workdir / "feature_spec.json")
        return {"source": self.cfg.request_source, "user_id": req.user_id, "t_ms": req.t_ms,
                "window_events": {s: int(one.length[s][0]) for s in streams},
                "raw_events_held": {s: int(t.num_rows) for s, t in req.tables.items()},
                "feeds": {k: list(v.shape) for k, v in f.items()}}  # fmt: skip

    def _kit(self, workdir: Path) -> dict:
        """The C kit on the same request (a compiled loop, pinned like the device), or why not."""
        from edgeintent.errors import KitError
        from edgeintent.kit.bench import bench_request

        self.say("    the C kit featurizer on the same request")
        try:
            return bench_request(self.bundle.spec, self._req.tables, self._req.t_ms, workdir,
                                 max(self.cfg.runs, KIT_RUNS), list(self.cpus))  # fmt: skip
        except KitError as exc:
            return {"why": str(exc)}

    # -- one variant -----------------------------------------------------------------------------
    def _limits_text(self) -> str:
        cpus = ",".join(map(str, self.cpus))
        return f"{self.device.threads} thread, CPU {cpus}, {self.budget_mb:g} MB memory budget"

    def _job(self, kind: str, workdir: Path, **kw) -> dict:
        return {"kind": kind, "threads": self.device.threads, "cpus": list(self.cpus),
                "memory_bytes": int(self.budget_mb * 1024 * 1024), "runs": self.cfg.runs, "warmup": self.cfg.warmup,
                "feeds": str(workdir / "feeds.npz"), **kw}  # fmt: skip

    def _measure(self, job: dict, workdir: Path, name: str, what: str) -> dict:
        code, res, stage = run_child(job, workdir, name, self.device.threads)
        if code == 0 and res and "error" not in res:
            return res
        err = (res or {}).get("error", describe_exit(code))
        capped = job.get("memory_bytes") is not None
        memory = bool((res or {}).get("memory"))
        if capped and not memory and code < 0:
            # a crash under the cap (MNN may not raise on a failed allocation): does it pass without it?
            retry = dict(job, memory_bytes=None, runs=1, warmup=0, profile=False)
            code2, res2, _ = run_child(retry, workdir, f"{name}.uncapped", self.device.threads)
            memory = code2 == 0 and res2 is not None and "error" not in res2
            err = f"{describe_exit(code)} under the cap, runs without it"
        if capped and memory:
            raise MemoryBudgetError(
                f"{what} exceeds the device's memory budget: {self.device.name} allows {self.budget_mb:g} MB for the model "
                f"and the {stage} stage failed ({err})"
            )
        raise BenchError(f"{what}: the measuring process failed at the {stage} stage: {err}")

    def _callgrind(self, job: dict, workdir: Path, name: str) -> dict:
        det_dir = workdir / f"{name}.callgrind"
        det_dir.mkdir()
        wrap = [*CALLGRIND_ARGS, f"--callgrind-out-file={det_dir}/callgrind.out.%p"]
        dj = dict(job, deterministic=True, runs=self.cfg.deterministic_runs, warmup=self.cfg.deterministic_warmup, profile=False,
                  memory_bytes=None)  # fmt: skip
        code, res, stage = run_child(dj, workdir, name + ".det", self.device.threads, wrap=wrap, extra_env=CALLGRIND_ENV)
        if code != 0 or not res or "error" in res:
            raise BenchError(f"{name}: callgrind run failed at the {stage} stage: {(res or {}).get('error', describe_exit(code))}")
        # one intra-op thread runs on the calling thread: count it alone, so that the runtime's and
        # libraries' background threads (woken by the clock, not by the work) do not enter the count
        single = self.device.threads == 1
        parts = parse_callgrind_dir(det_dir, thread=1 if single else None)
        if len(parts) < 2:
            raise BenchError(f"{name}: callgrind wrote {len(parts)} dumps, expected the two markers around the loop")
        loop = parts[sorted(parts)[1]]  # counters since the first marker, dumped at the second
        return {"instructions_per_inference": loop / dj["runs"], "instructions_total": loop, "runs": dj["runs"],
                "threads_counted": "calling thread" if single else "all threads",
                "tool": " ".join(CALLGRIND_ARGS) + ", PYTHONHASHSEED=0; counters dumped on entering getsid before and after the loop"}  # fmt: skip

    # -- everything ------------------------------------------------------------------------------
    def artifacts(self) -> list:
        """The exported artifacts this bench measures; a one-line ConfigError when the request cannot run
        (nothing exported for a requested target, no exports at all, ``--deterministic`` without valgrind)."""
        from edgeintent.exporters import exported_artifacts, get_target

        metas = exported_artifacts(self.bundle, list(self.cfg.targets) if self.cfg.targets else None)
        if self.cfg.targets:
            missing = [t for t in self.cfg.targets if not any(m.target == t for m in metas)]
            if missing:
                raise ConfigError(f"{self.bundle_dir}: nothing exported for {', '.join(missing)}; "
                                  f"run: edgeintent export {self.bundle_dir} --target {missing[0]}")  # fmt: skip
        metas = [m for m in metas if get_target(m.target).kind == "model"]  # the kit is the featurizer row
        if not metas:
            raise ConfigError(f"{self.bundle_dir}: no exported artifacts; run: edgeintent export {self.bundle_dir} --target all")
        if self.cfg.deterministic and shutil.which("valgrind") is None:
            raise ConfigError("--deterministic needs valgrind (callgrind), which is not installed; "
                              "install it with: apt-get install -y valgrind")  # fmt: skip
        return metas

    def run(self, parity_report: dict | None = None, metas: list | None = None) -> dict:
        """Bench ``metas`` (default: :meth:`artifacts`) with the status column read from ``parity_report``."""
        metas = self.artifacts() if metas is None else metas
        workdir = Path(tempfile.mkdtemp(prefix="edgeintent-bench-"))
        try:
            return self._run(metas, parity_status(parity_report), workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run(self, metas: list[dict], parity: dict, workdir: Path) -> dict:
        dev = self.device
        limits = self._limits_text()
        request = self._request(workdir)
        self.say(f"    featurizer on one request ({', '.join(f'{s} {n}' for s, n in request['window_events'].items())} events)")
        fjob = self._job("featurizer", workdir, spec=str(workdir / "feature_spec.json"), window=str(workdir / "window"),
                         t_ms=request["t_ms"])  # fmt: skip
        feat = self._measure(fjob, workdir, "featurizer", "the featurizer")
        feat_stats = stats(feat["times_ms"])
        feat_cpu = stats(feat["cpu_times_ms"])  # what the projection scales: other processes' turns left out
        kit = self._kit(workdir)

        from edgeintent.exporters import artifact_of

        torch_art = Artifact("torch", str(self.bundle_dir), "fp32", tuple(self.model.input_names()),
                             tuple(self.model.output_names()))  # fmt: skip
        variants = [{"target": "torch", "precision": "fp32", "art": torch_art, "artifact": None, "bytes": None,
                     "reference": True}]  # fmt: skip
        for m in metas:
            variants.append({"target": m.target, "precision": m.precision, "art": artifact_of(self.bundle, m),
                             "artifact": m.artifact, "bytes": m.bytes, "reference": False})  # fmt: skip
        rows, op_profile = [], None
        for v in variants:
            art: Artifact = v["art"]
            rt = RUNTIMES.get(art.runtime)
            name = f"{v['target']}-{v['precision']}"
            row = {"target": v["target"], "precision": v["precision"], "runtime": rt.label, "reference": v["reference"],
                   "runtime_api": rt.name, "runtime_precision": art.precision,
                   "artifact": v["artifact"], "artifact_bytes": v["bytes"],
                   "status": {"exported": not v["reference"],
                              "parity": "reference" if v["reference"] else parity.get((v["target"], v["precision"]), "not run"),
                              "benched": False}}  # fmt: skip
            why = rt.available()
            if not rt.timed or why:
                row["status"]["benched"] = "functional only (MIL reference, not a phone runtime)" if not rt.timed else f"no: {why}"
                rows.append(row)
                continue
            self.say(f"    {name} on {rt.label} ({self.cfg.runs} runs)")
            profile = rt.name == "onnxruntime" and v["precision"] == "fp32"  # the per-op profile of the memory share
            job = self._job("model", workdir, artifact=asdict(art),
                            profile=profile, profile_runs=self.cfg.profile_runs)  # fmt: skip
            if v["reference"]:  # torch eager is the reference, not what ships: pinned and threaded, not capped
                job["memory_bytes"] = None
            res = self._measure(dict(job, profile=False), workdir, name, f"{name} ({rt.label})")
            details = rt.details is not None and not v["reference"]
            if profile or details:  # in its own process without the cap: profiling is ours, not the device's
                pjob = dict(job, memory_bytes=None, runs=1, warmup=0, details=details)
                pres = self._measure(pjob, workdir, name + ".profile", f"{name} profile")
                op_profile = pres.get("op_profile") if profile else op_profile
                if details:
                    row["runtime_details"] = pres.get("runtime_details")
            st = stats(res["times_ms"])
            cst = stats(res["cpu_times_ms"])
            row.update({
                "runtime": f"{rt.label} {res['runtime_version']}",
                "measured": {"label": project.label_measured(dev.name, limits), "init_ms": res["init_ms"],
                             "first_ms": res["first_ms"], "warmup_runs": res["warmup_runs"],
                             "warmup_mean_ms": res["warmup_ms"] / max(res["warmup_runs"], 1), **st,
                             "cpu": {k: cst[k] for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms")}},
                "peak_rss_bytes": res["peak_rss_bytes"],
                "model_rss_bytes": res["peak_rss_bytes"] - res["rss_before_load_bytes"],
                "limits_observed": {"affinity": res["affinity"], "runtime_threads": self.device.threads,
                                    "os_threads_before_load": res["os_threads_before_load"],
                                    "os_threads_after_load": res["os_threads_after_load"],
                                    "os_threads_running": res["os_threads_running"],
                                    "address_space_cap_bytes": res["cap_bytes"]},
                "outputs": res["outputs"],
                "runtime_info": res.get("runtime_info"),
                "_times": res["times_ms"],
            })  # fmt: skip
            row["status"]["benched"] = True
            if self.cfg.deterministic and not v["reference"]:
                self.say(f"    {name} under callgrind ({self.cfg.deterministic_runs} runs)")
                row["deterministic"] = self._callgrind(job, workdir, name)
            rows.append(row)

        m, how = project.memory_share(op_profile)
        host = host_record()  # measured once per process: CPU, clock, SIMD level, calibration block
        proj = project.projection(dev, host, m, how)
        fac = proj["factor"]
        feat_fac = proj["featurizer_factor"]  # the featurizer is numpy over a few hundred events: CPU work
        plabel = project.label_projected(dev.name)
        rng = dev.check_range
        torch_row = next((r for r in rows if r["reference"] and "measured" in r), None)
        for r in rows:
            if "measured" not in r:
                continue
            meas = r["measured"]
            cpu = meas["cpu"]  # the steady runs in process CPU time; first_ms is one run, wall clock
            r["projected"] = {"label": plabel, "first_ms": meas["first_ms"] * fac, "p50_ms": cpu["min_ms"] * fac,
                              **{k: max(cpu[k], cpu["min_ms"]) * fac for k in ("p90_ms", "p99_ms", "mean_ms")},
                              "from": project.PROJECTED_FROM,
                              "precision": dev.precision, "p50_ms_range": project.time_range(cpu["min_ms"] * fac, rng)}  # fmt: skip
            r["featurizer_ms"] = {"measured": feat_stats["p50_ms"], "projected": feat_cpu["min_ms"] * feat_fac}
            req_meas = feat_stats["p50_ms"] + meas["p50_ms"]
            req_proj = feat_cpu["min_ms"] * feat_fac + r["projected"]["p50_ms"]
            r["request_ms"] = {"measured": req_meas, "projected": req_proj,
                               "label": f"featurizer p50 + model p50 ({project.label_measured(dev.name, limits)} / {plabel})"}  # fmt: skip
            r["featurizer_share"] = {"measured": feat_stats["p50_ms"] / req_meas,
                                     "projected": feat_cpu["min_ms"] * feat_fac / req_proj}  # fmt: skip
            if torch_row is not None:
                r["speedup_vs_torch_eager"] = torch_row["measured"]["p50_ms"] / meas["p50_ms"]
            if "p50_ms" in kit:  # the same request featurized by the C kit
                kit_meas, kit_proj = kit["p50_ms"] + meas["p50_ms"], kit["min_ms"] * feat_fac + r["projected"]["p50_ms"]
                r["request_kit_ms"] = {"measured": kit_meas, "projected": kit_proj}
                r["featurizer_share_kit"] = {"measured": kit["p50_ms"] / kit_meas, "projected": kit["min_ms"] * feat_fac / kit_proj}

        timed = [r for r in rows if "measured" in r and not r["reference"]]
        fastest = min(timed, key=lambda r: r["measured"]["p50_ms"]) if timed else None
        default = [r for r in timed if r["target"] == dev.runtime]
        default_row = min(default, key=lambda r: r["measured"]["p50_ms"]) if default else None
        summary = {
            "fastest": None if fastest is None else f"{fastest['target']} {fastest['precision']}",
            "default_target": dev.runtime,
            "default_artifact": None if default_row is None else f"{default_row['target']} {default_row['precision']}",
            "default_vs_fastest_p50": None if (default_row is None or fastest is None)
            else default_row["measured"]["p50_ms"] / fastest["measured"]["p50_ms"],
            "default_speedup_vs_torch_eager": None if default_row is None else default_row.get("speedup_vs_torch_eager"),
            "default_timed_here": default_row is not None,
        }  # fmt: skip
        self._times = {f"{r['target']} {r['precision']}": r.pop("_times") for r in rows if "_times" in r}
        self._times["featurizer"] = feat["times_ms"]
        return {
            "schema": SCHEMA,
            "bundle": str(self.bundle_dir),
            "model": self.bundle.config["model"]["name"],
            "device": dev.as_dict(host) | {"memory_budget_mb_applied": self.budget_mb},
            "host": host.as_dict(),
            "limits": {"label": limits, "threads": dev.threads, "cpus": list(self.cpus), "memory_budget_mb": self.budget_mb,
                       "how": "child process per variant: sched_setaffinity, runtime intra-op threads + OMP/OPENBLAS env, "
                              "RLIMIT_AS = mapped address space after imports + budget; peak RSS = VmHWM after clear_refs"},
            "request": request,
            "featurizer": {"label": project.label_measured(dev.name, limits), **feat_stats, "first_ms": feat["first_ms"],
                           "cpu": {k: feat_cpu[k] for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms")},
                           "projected": {"label": plabel, "p50_ms": feat_cpu["min_ms"] * feat_fac},
                           "peak_rss_bytes": feat["peak_rss_bytes"]},
            "featurizer_kit": kit if "p50_ms" not in kit else {
                "label": f"measured on host, pinned to CPU {','.join(map(str, self.cpus))}", **kit,
                "projected": {"label": plabel, "p50_ms": kit["min_ms"] * feat_fac,
                              "from": "the C loop's minimum wall time × featurizer factor (the models' projections use the minimum)"}},
            "projection": proj,
            "rows": rows,
            "summary": summary,
            "runs": self.cfg.runs,
            "warmup": self.cfg.warmup,
        }  # fmt: skip


def parity_status(report: dict | None) -> dict[tuple[str, str], str]:
    """(target, precision) → "ok" or "FAIL" from a parity report (empty without one)."""
    out: dict[tuple[str, str], str] = {}
    for r in (report or {}).get("results", []):
        key = (r["target"], r["precision"])
        out[key] = "FAIL" if (out.get(key) == "FAIL" or not r["passed"]) else "ok"
    return out


def parse_callgrind_dir(folder: Path, thread: int | None = None) -> dict[int, int]:
    """part number → total instructions, for the dumps triggered at the child's markers (not at exit):
    of one thread (``--separate-threads=yes`` output; 1 is the main thread) or, with None, of all."""
    parts: dict[int, int] = {}
    for p in folder.glob("callgrind.out.*"):
        part, total, dump, tid = None, None, False, None
        with open(p) as fh:
            for line in fh:
                if line.startswith("part:"):
                    part = int(line.split()[1])
                elif line.startswith("thread:"):
                    tid = int(line.split()[1])
                elif line.startswith("desc: Trigger:") and "dump" in line.lower() and "termination" not in line.lower():
                    dump = True
                elif line.startswith(("summary:", "totals:")) and total is None:
                    total = int(line.split()[1])
        if dump and part is not None and total is not None and (thread is None or tid == thread):
            parts[part] = parts.get(part, 0) + total
    return parts


def run_bench(bundle_dir, cfg: BenchConfig, parity_report: dict | None = None, say=None, plot=None,
              gate: Callable[[list[str]], dict] | None = None) -> dict:  # fmt: skip
    """Bench ``bundle_dir`` under ``cfg``. The status column reads ``parity_report``, or the report that
    ``gate(targets)`` returns for the exported targets bench will measure (called once the request is
    known to be valid, so a bad request fails before any parity run)."""
    bench = Bench(bundle_dir, cfg, say)
    metas = bench.artifacts()
    if parity_report is None and gate is not None:
        parity_report = gate(sorted({m.target for m in metas}))
    report = bench.run(parity_report, metas)
    if plot is not None:
        write_plot(bench._times, report, Path(plot))
        report["plot"] = str(plot)
    return report


def write_plot(times: dict[str, list[float]], report: dict, path: Path) -> None:
    """Latency per artifact (measured on host under the limits): one horizontal box per artifact, fastest
    on top, whiskers at p1/p99, p50 and p99 written beside each box; log scale. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeintent.io import atomic_path

    order = sorted(times, key=lambda k: float(np.median(times[k])), reverse=True)  # fastest drawn last = on top
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.55 * len(order)))
    data = [np.asarray(times[k], dtype=float) for k in order]
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=False, widths=0.55, medianprops={"color": "C3", "linewidth": 2})
    ax.set_yticks(range(1, len(order) + 1), order, fontsize=9)
    ax.set_xscale("log")
    hi = max(float(np.percentile(v, 99)) for v in data)
    for i, v in enumerate(data, 1):
        p50, p99 = np.percentile(v, [50, 99])
        ax.text(hi * 1.25, i, f"p50 {p50:.3g}  p99 {p99:.3g} ms", va="center", fontsize=8)
    ax.set_xlim(right=hi * 6)
    ax.set_xlabel("latency per inference, ms (log scale); box p25–p75, whiskers p1–p99")
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_title(f"{report['model']}: measured on host under {report['device']['name']} limits ({report['limits']['label']})", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
