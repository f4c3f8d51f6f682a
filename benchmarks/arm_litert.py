"""LiteRT on the host (x86-64) and on cpu-arm (ai-edge-litert's aarch64 wheel under qemu), side by side.

    python benchmarks/arm_litert.py --json                      # dipn and iidn, windows gesture 8, click 4, cloud 4
    python benchmarks/arm_litert.py --windows 50,20,20 --json   # the bundles' default windows (slower conversions)

``--write-results`` writes ``docs/results/arm_litert.{json,md}`` (other windows: ``arm_litert-G-C-K.*``).

Builds the emulated environment if needed (``edgeintent devices setup cpu-arm``, root) and reports what it
holds: the build's steps and seconds, and the bytes of every distribution in the aarch64 site, marking
those only ai-edge-litert brings. Then, per model (trained briefly on ``--data``, ``--golden`` golden rows),
it exports litert (fp32, XNNPACK), adds the dynamic-int8 recipe (``edgeintent quantize --mode
dynamic-int8``) and runs three artifacts on both devices: fp32 with XNNPACK, the same file with the
built-in kernels only (``litert-builtin``), and dynamic-int8 with XNNPACK. Each golden row runs alone
(its streams padded to the static shape by the session); per artifact and gesture length it gives the
largest |Δ| of logits and probabilities against torch on each device and between the devices. Last, the
parity gate (``edgeintent parity --target litert``) on both devices with its wall time: emulated wall
times are parity times, not phone latencies.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.exporters import ArtifactMeta, artifact_of, export_bundle, exported_artifacts  # noqa: E402
from edgeintent.parity import run_parity  # noqa: E402
from edgeintent.runtimes import HostProvider, emulation  # noqa: E402
from edgeintent.runtimes.providers import provider  # noqa: E402
from edgeintent.toolkit.bundle import load_bundle, load_model  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402
from edgeintent.toolkit.features.spec import FitConfig  # noqa: E402
from edgeintent.toolkit.golden import golden_samples  # noqa: E402
from edgeintent.toolkit.models.exportable import feeds, torch_model, torch_outputs  # noqa: E402
from edgeintent.toolkit.training.trainer import TrainConfig, prepare, train_bundle  # noqa: E402


def _closure(roots: list[str], dists: dict) -> set[str]:
    """Names (lower case) of ``roots`` and every distribution they require, within ``dists``."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [r.lower() for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in dists:
            continue
        seen.add(name)
        for req in dists[name].requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name.lower().replace("_", "-"))
    return seen


def site_sizes(site: Path) -> list[dict]:
    """Bytes per distribution in the aarch64 site (its RECORD), and whether only ai-edge-litert needs it."""
    dists = {d.metadata["Name"].lower().replace("_", "-"): d for d in metadata.distributions(path=[str(site)])}
    base = _closure(list(emulation.WHEELS), dists)
    litert = _closure(list(emulation.OPTIONAL_WHEELS), dists)
    rows = []
    for name, d in sorted(dists.items()):
        size = sum((site / f).stat().st_size for f in (d.files or []) if (site / f).is_file())
        rows.append({"distribution": d.metadata["Name"], "version": d.version, "bytes": size,
                     "only_for_litert": name in litert and name not in base})  # fmt: skip
    return rows


def _batch1(model, bundle) -> list[tuple[int, dict]]:
    samples = golden_samples(bundle.golden)
    return [(i, feeds(model, samples, np.array([i]))) for i in range(len(samples))]


def _outputs(session, rows) -> list[dict]:
    return [session.run(f) for _, f in rows]


def per_length(rows, ref, host, arm, tasks, artifact: str, name: str) -> list[dict]:
    """Largest |Δ| per gesture length (the longest recurrence), and over all rows."""
    lengths = np.array([int(f["gesture_len"][0]) for _, f in rows])
    out = []
    for length in [*sorted(set(lengths.tolist())), None]:
        pick = np.flatnonzero(lengths == length) if length is not None else np.arange(len(rows))
        row = {"model": name, "artifact": artifact, "gesture_length": "all" if length is None else length, "rows": len(pick)}
        for kind in ("logit", "prob"):
            keys = [f"{kind}_{t}" for t in tasks]

            def worst(a, b):
                return max(float(np.abs(np.asarray(a[i][k], np.float64) - np.asarray(b[i][k], np.float64)).max())
                           for i in pick for k in keys)  # fmt: skip

            row[f"host_{kind}_max_abs"] = worst(host, ref)
            row[f"arm_{kind}_max_abs"] = worst(arm, ref)
            row[f"host_vs_arm_{kind}_max_abs"] = worst(host, arm)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="dipn,iidn")
    ap.add_argument("--data", default="sim:600:3")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--golden", type=int, default=64, help="golden rows per bundle")
    ap.add_argument("--windows", default="8,4,4", help="max_len of gesture, click, cloud")
    _results.add_args(ap)
    args = ap.parse_args()

    t0 = time.perf_counter()
    setup = emulation.setup()
    env = emulation.environment()
    result = {"setup": {"seconds": round(time.perf_counter() - t0, 1), "built": setup["built"], "steps": setup["seconds"],
                        "runtimes": setup["runtimes"], "cache_bytes": setup["bytes"]},
              "site": site_sizes(env.site), "lengths": [], "parity": []}  # fmt: skip
    only = [r["bytes"] for r in result["site"] if r["only_for_litert"]]
    result["setup"]["litert_bytes"] = sum(only)
    g, c, k = (int(x) for x in args.windows.split(","))
    fit = FitConfig(max_len=(("gesture", g), ("click", c), ("cloud", k)))
    host_p, arm_p = HostProvider(), provider("cpu-arm")
    prep = prepare(load_source(args.data), 0, 0.2, fit=fit)
    with tempfile.TemporaryDirectory(prefix="edgeintent-armlitert-") as tmp:
        for name in args.models.split(","):
            path = Path(tmp) / name
            train_bundle(name, args.data, path, TrainConfig(epochs=args.epochs, golden_rows=args.golden), fit=fit, prepared=prep)
            t1 = time.perf_counter()
            export_bundle(path, "litert")
            convert_s = time.perf_counter() - t1
            from click.testing import CliRunner

            from edgeintent.cli import main as cli

            res = CliRunner().invoke(cli, ["quantize", str(path), "--target", "litert", "--mode", "dynamic-int8", "--runs", "10"])
            if res.exit_code != 0:
                raise SystemExit(f"quantize failed: {res.output[-500:]}")
            bundle = load_bundle(path)
            model = load_model(bundle)
            tm = torch_model(model)
            rows = _batch1(tm, bundle)
            ref = [torch_outputs(tm, f) for _, f in rows]
            metas = {m.precision: m for m in exported_artifacts(bundle, ["litert"])}
            builtin = ArtifactMeta.from_json({**metas["fp32"].to_json(), "litert_delegate": "none"})
            for label, meta in (("fp32 XNNPACK", metas["fp32"]), ("fp32 built-in", builtin),
                                ("dynamic-int8 XNNPACK", metas["dynamic-int8"])):  # fmt: skip
                art = artifact_of(bundle, meta)
                with host_p.open(art) as hs:
                    host = _outputs(hs, rows)
                with arm_p.open(art) as ars:
                    arm = _outputs(ars, rows)
                    info = ars._impl.details()
                lr = per_length(rows, ref, host, arm, model.tasks, label, name)
                lr[-1].update(arm_delegate=info["delegate"], arm_delegate_nodes=info["delegate_nodes"], ops=info["ops"])
                result["lengths"] += lr
            for device, prov in (("host", host_p), ("cpu-arm", arm_p)):
                t1 = time.perf_counter()
                report = run_parity(path, ["litert"], provider=prov)
                secs = time.perf_counter() - t1
                for r in report["results"]:
                    if r["target"] == "litert":
                        m = r["metrics"]
                        result["parity"].append({"model": name, "precision": r["precision"], "output": r["output"], "device": device,
                                                 "arch": r["arch"], "prob_max_abs": m["prob_max_abs"], "logit_max_abs": m["logit_max_abs"],
                                                 "flip_share": m["flip_share"], "passed": r["passed"], "parity_seconds": round(secs, 1),
                                                 "convert_seconds": round(convert_s, 1)})  # fmt: skip
    # the default windows write docs/results/arm_litert.*, others arm_litert-G-C-K.*
    _results.emit("arm_litert" if (g, c, k) == (8, 4, 4) else f"arm_litert-{g}-{c}-{k}", result, args, table=table)
    if not args.json:
        print(table({"result": result}))


def table(record: dict) -> str:
    r = record.get("result", record)
    s = r["setup"]
    rt = s["runtimes"]
    wheels = ", ".join(f"{k} {v}" for k, v in rt.items() if k not in ("machine", "python", "libc"))
    only = ", ".join(f"{x['distribution']} {x['bytes'] / 2**20:.2f}" for x in r["site"] if x["only_for_litert"])
    lines = [f"cpu-arm environment: {rt['machine']} python {rt['python']} ({rt['libc']}), {wheels}; cache "
             f"{s['cache_bytes'] / 2**20:.0f} MiB, of which ai-edge-litert and what only it needs {s['litert_bytes'] / 2**20:.1f} MiB "
             f"({only}). Max abs logit differences per gesture length of the golden rows, each row run alone:", "",
             "| model | artifact | gesture length | rows | host vs torch | cpu-arm vs torch | host vs cpu-arm | cpu-arm delegate |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for x in r["lengths"]:
        dele = f"{x['arm_delegate']} ({x['arm_delegate_nodes']} nodes, {x['ops']} ops)" if "arm_delegate" in x else ""
        lines.append(f"| {x['model']} | {x['artifact']} | {x['gesture_length']} | {x['rows']} | {x['host_logit_max_abs']:.2e} | "
                     f"{x['arm_logit_max_abs']:.2e} | {x['host_vs_arm_logit_max_abs']:.2e} | {dele} |")  # fmt: skip
    lines += ["", "The parity gate (`edgeintent parity --target litert`) on each device:", "",
              "| model | precision | output | device | arch | max abs prob diff | max abs logit diff | passed | parity s |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for x in r["parity"]:
        lines.append(f"| {x['model']} | {x['precision']} | {x['output']} | {x['device']} | {x['arch']} | {x['prob_max_abs']:.2e} | "
                     f"{x['logit_max_abs']:.2e} | {x['passed']} | {x['parity_seconds']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
