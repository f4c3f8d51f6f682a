"""The ``edgeintent`` command: one thin subcommand per stage; the work lives in the library.

Bad input raises an :class:`~edgeintent.errors.EdgeIntentError`; the CLI prints its one line to
stderr and exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgeintent import __version__
from edgeintent.errors import ConfigError, DataError, EdgeIntentError

# tables are wide: when output is not a terminal (CI logs, pipes), do not squeeze them into 80 columns
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

SOURCE_HELP = "a file (.csv/.parquet/.jsonl), sim:USERS[:SEED], taobao:PATH or hmog:PATH"


class _Group(click.Group):
    """Turns EdgeIntentError into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeIntentError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="edgeintent")
def main() -> None:
    """On-device intent inference: featurize event logs, train, export, check, bench, decide."""


def _print_json(obj) -> None:
    from edgeintent.toolkit.bundle import json_default

    click.echo(json.dumps(obj, indent=2, default=json_default))


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Simulate, inspect and calibrate event data."""


@data.command("simulate")
@click.option("--users", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="events file (.parquet, .csv or .jsonl); decision points go to OUT.decisions.parquet")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def data_simulate(users: int, seed: int, out: Path, as_json: bool) -> None:
    """Write simulated events (streamed block by block, bounded memory) and their decision points."""
    from edgeintent.toolkit.pipeline import simulate_to_file

    t0 = time.perf_counter()
    summary = simulate_to_file(users, seed, out, progress=not as_json)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        _print_json(summary)
    else:
        console.print(
            f"wrote {summary['events']:,} events of {users:,} users to {summary['events_file']} "
            f"and {summary['decisions']:,} decision points to {summary['decisions_file']} "
            f"in {summary['seconds']:.1f} s"
        )


@data.command("inspect")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def data_inspect(source: str, as_json: bool) -> None:
    """Users, events per stream, time span, decision points, label rates, top categories of SOURCE."""
    from edgeintent.toolkit.pipeline import inspect_source

    report = inspect_source(source)
    if as_json:
        _print_json(report)
        return
    _print_inspect(report)


def _print_inspect(r: dict) -> None:
    console.print(f"[bold]{r['source']}[/]: {r['users']:,} users, {r['events']:,} events, "
                  f"{r['time_span']['days']:.2f} days")
    t = Table("stream", "events", "per user", "top values")
    for s, info in r["streams"].items():
        top = ", ".join(f"{k} {v:.1%}" for k, v in list(info["top"].items())[:5])
        t.add_row(s, f"{info['events']:,}", f"{info['per_user']:.1f}", top)
    console.print(t)
    d = r["decision_points"]
    lt = Table("label", "horizon", "rate", "observed")
    for name, info in d["labels"].items():
        rate = "n/a (no cloud stream)" if info["rate"] is None else f"{info['rate']:.2%}"
        lt.add_row(name, info["horizon"], rate, f"{info['observed']:.1%}")
    console.print(f"{d['count']:,} decision points ({d['rule']})")
    console.print(lt)
    for name, top in d["columns"].items():
        console.print(f"decision {name}: " + ", ".join(f"{k} {v:.1%}" for k, v in top.items()))
    for note in r.get("notes", []):
        console.print(f"note: {note}")


@data.command("calibrate")
@click.option("--hmog", "hmog", type=click.Path(path_type=Path), default=None, help="HMOG folder")
@click.option("--taobao", "taobao", type=click.Path(path_type=Path), default=None, help="Taobao sample CSV or folder")
def data_calibrate(hmog: Path | None, taobao: Path | None) -> None:
    """Print the real-data marginals the simulator is calibrated to (JSON)."""
    from edgeintent.toolkit.datasets import calibration

    _print_json(calibration.calibrate(hmog=hmog, taobao=taobao))


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------


@main.group()
def features() -> None:
    """Fit a FeatureSpec and turn events into model inputs."""


@features.command("fit")
@click.argument("source")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="spec.json to write")
@click.option("--min-count", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--buckets", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--max-len", "max_len", default="gesture=50,click=20,cloud=20", show_default=True,
              help="events kept per stream before each decision point")
@click.option("--json", "as_json", is_flag=True)
def features_fit(source: str, out: Path, min_count: int, buckets: int, max_len: str, as_json: bool) -> None:
    """Fit vocabularies, bucket edges and hash sizes on SOURCE and save them as versioned JSON."""
    from edgeintent.toolkit.features import FitConfig, fit_spec
    from edgeintent.toolkit.data.sources import load_source

    cfg = FitConfig(max_len=_parse_max_len(max_len), min_count=min_count, n_buckets=buckets)
    ds = load_source(source)
    spec = fit_spec(ds.events, cfg, utc_offset_ms=ds.utc_offset_ms)
    _check_out_dir(out)
    spec.save(out)
    summary = {
        "spec": str(out),
        "streams": {s: {"features": len(spec.features[s]), "max_len": spec.max_len[s],
                        "cardinalities": spec.cardinalities(s)} for s in spec.streams},
    }
    if as_json:
        _print_json(summary)
    else:
        for s, info in summary["streams"].items():
            console.print(f"{s}: {info['features']} features, max_len {info['max_len']}, "
                          f"ids {info['cardinalities']}")
        console.print(f"wrote {out}")


@features.command("build")
@click.argument("source")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="samples .npz")
@click.option("--json", "as_json", is_flag=True)
def features_build(source: str, spec_path: Path, out: Path, as_json: bool) -> None:
    """Featurize SOURCE at its decision points into padded id arrays, lengths and labels (.npz)."""
    from edgeintent.toolkit.features import FeatureSpec, build_samples, save_samples
    from edgeintent.toolkit.data.sources import load_source

    spec = FeatureSpec.load(spec_path)
    ds = load_source(source)
    t0 = time.perf_counter()
    samples = build_samples(ds.events, spec, ds.decisions)
    secs = time.perf_counter() - t0
    _check_out_dir(out)
    save_samples(samples, out)
    summary = {
        "samples": len(samples),
        "shapes": {s: list(v.shape) for s, v in samples.x.items()},
        "label_rates": {k: float(v.mean()) if len(v) else 0.0 for k, v in samples.labels.items()},
        "seconds": round(secs, 3),
        "out": str(out),
    }
    if as_json:
        _print_json(summary)
    else:
        console.print(f"{len(samples):,} samples, shapes {summary['shapes']}, built in {secs:.2f} s → {out}")


def _parse_max_len(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, n = part.partition("=")
        try:
            out.append((name.strip(), int(n)))
        except ValueError:
            raise ConfigError(f"--max-len expects stream=N pairs, got {part!r}") from None
    return tuple(out)


def _check_out_dir(path: Path) -> None:
    if not path.parent.exists():
        raise DataError(f"{path}: directory {path.parent} does not exist")


# ---------------------------------------------------------------------------------------------
# models, train, eval
# ---------------------------------------------------------------------------------------------


@main.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(as_json: bool) -> None:
    """List the registered models with parameter count and weight size (on a simulator FeatureSpec)."""
    from edgeintent.toolkit.models import describe_models

    rows = describe_models()
    if as_json:
        _print_json(rows)
        return
    t = Table("model", "kind", "tasks", "parameters", "weights", "description")
    for r in rows:
        size = "after fit" if r["weight_bytes"] is None else f"{r['weight_bytes'] / 1024:.0f} KB"
        params = "after fit" if r["parameters"] is None else f"{r['parameters']:,}"
        t.add_row(r["name"], r["kind"], ",".join(r["tasks"]), params, size, r["description"])
    console.print(t)
    console.print("parameters and fp32 weights for all three streams of a FeatureSpec fitted on sim:500")


def _parse_options(pairs: tuple[str, ...]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


def _split_list(text: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else None


@main.command("train")
@click.option("--model", "model_name", required=True, help="a name from `edgeintent models`")
@click.option("--data", "source", required=True, help=SOURCE_HELP)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="bundle directory")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--pos-weight", default="auto", show_default=True, help="auto, none or a number")
@click.option("--streams", default=None, help="comma-separated subset, e.g. cloud (default: all in the data)")
@click.option("--tasks", default=None, help="comma-separated labels, e.g. buy_rt,buy_long")
@click.option("--rnn", type=click.Choice(["gru", "lstm"]), default=None,
              help="recurrent cell for dipn / iidn (lstm lets int8 quantization cover the recurrent weights)")
@click.option("--set", "options", multiple=True, help="model option KEY=VALUE, e.g. --set inter=false")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace an existing bundle")
@click.option("--json", "as_json", is_flag=True)
def train_cmd(model_name, source, out, epochs, batch_size, lr, seed, patience, pos_weight, streams, tasks, rnn, options,
              threads, overwrite, as_json) -> None:  # fmt: skip
    """Train a model on SOURCE (split by user) and write a verified bundle to OUT."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    _check_out_dir(out)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
                      pos_weight=pos_weight, threads=threads)  # fmt: skip
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err_console, disable=as_json, transient=True) as bar:  # fmt: skip
        task = bar.add_task(f"train {model_name}", total=epochs, info="featurizing")

        def on_epoch(row: dict) -> None:
            bar.update(task, completed=row["epoch"],
                       info=f"epoch {row['epoch']} loss {row['loss']:.4f} valid AUC {row['valid_auc']:.4f}")  # fmt: skip

        summary = train_bundle(model_name, source, out, cfg, streams=_split_list(streams), tasks=_split_list(tasks),
                               options={**_parse_options(options), **({"rnn": rnn} if rnn else {})}, overwrite=overwrite, on_epoch=on_epoch)  # fmt: skip
    if as_json:
        _print_json(summary)
        return
    console.print(f"{summary['model']} on {', '.join(summary['streams'])}: {summary['parameters']:,} parameters, "
                  f"{summary['weight_bytes'] / 1024:.0f} KB, {summary['train_seconds']:.0f} s, best epoch {summary['best_epoch']}")  # fmt: skip
    _print_metrics(summary["valid"], "validation users")
    console.print(f"wrote bundle {out}")


def _print_metrics(tasks: dict, what: str) -> None:
    t = Table("task", "n", "rate", "AUC", "95% CI", "KS", "logloss", "ECE", title=what)
    for name, r in tasks.items():
        lo, hi = r["auc_ci"]
        t.add_row(name, f"{r['n']:,}", f"{r['rate']:.2%}", f"{r['auc']:.4f}", f"{lo:.3f}–{hi:.3f}", f"{r['ks']:.3f}",
                  f"{r['logloss']:.4f}", f"{r['ece']:.4f}")  # fmt: skip
    console.print(t)


@main.command("eval")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", "source", default=None, help=f"{SOURCE_HELP} (default: the training data's validation users)")
@click.option("--users", type=click.Choice(["auto", "valid", "all"]), default="auto", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="ROC + calibration PNG")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(bundle: Path, source: str | None, users: str, plot: Path | None, as_json: bool) -> None:
    """Evaluate a bundle: AUC (bootstrap CI over users), KS, logloss and calibration per task."""
    from edgeintent.toolkit.training.trainer import evaluate_bundle

    if plot is not None:
        _check_out_dir(plot)
    result = evaluate_bundle(bundle, source, users, plot)
    if as_json:
        _print_json(result)
        return
    _print_metrics(result["tasks"], f"{result['model']} on {result['data']} ({result['users']} users, {result['samples']:,} samples)")
    if plot is not None:
        console.print(f"wrote {plot}")


# ---------------------------------------------------------------------------------------------
# decide: coupon allocation and policy evaluation (logic in edgeintent/decide/)
# ---------------------------------------------------------------------------------------------

_OBJECTIVE = click.Choice(["purchases", "incremental", "value"])


@main.command("allocate")
@click.option("--bundle", "bundle", type=click.Path(path_type=Path), required=True, help="bundle of a model with a coupon input (iidn)")
@click.option("--data", "source", required=True, help=SOURCE_HELP)
@click.option("--budget", type=click.FloatRange(min=0), required=True, help="total face value of the coupons")
@click.option("--amounts", default=None, help="coupon amounts, 0 first (default: the data's, else the model's)")
@click.option("--gamma", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="coupons only if stay < gamma (1 = everyone)")
@click.option("--objective", type=_OBJECTIVE, default="incremental", show_default=True)
@click.option("--order-value", type=click.FloatRange(min=0), default=1.0, show_default=True, help="order value for --objective value")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="decisions .parquet")
@click.option("--json", "as_json", is_flag=True)
def allocate_cmd(bundle, source, budget, amounts, gamma, objective, order_value, out, as_json) -> None:
    """Allocate coupons under a budget (MCKP, primal-dual); write decisions and the bundle's decision.json."""
    from edgeintent.decide.run import parse_numbers, run_allocate

    amts = parse_numbers(amounts, "--amounts") if amounts is not None else None
    r = run_allocate(bundle, source, budget, out, amts, gamma, objective, order_value)
    if as_json:
        _print_json(r)
        return
    counts = ", ".join(f"{a}: {c:,}" for a, c in r["counts"].items())
    console.print(f"{r['users']:,} decision points ({r['eligible']:,} eligible), budget {r['budget']:,.0f}, "
                  f"spend {r['spend']:,.0f}, λ = {r['lambda']:.6g}")  # fmt: skip
    console.print(f"coupons per amount: {counts}")
    console.print(f"{r['objective']} objective {r['value']:.2f}, LP bound {r['lp_bound']:.2f} (gap {r['lp_gap']:.2e})")
    console.print(f"on-device rule picks the solver's amount for {r['device_parity']:.3%}")
    console.print(f"wrote {r['out']} and {r['rule_file']}")


@main.command("policy-eval")
@click.option("--bundle", "bundle", type=click.Path(path_type=Path), required=True)
@click.option("--data", "source", required=True, help="sim:USERS[:SEED] (needs potential outcomes)")
@click.option("--budgets", default=None, help="total budgets B1,B2,… (default: 2.5, 5 and 10 per decision point)")
@click.option("--gamma", type=click.FloatRange(0, 1), default=1.0, show_default=True)
@click.option("--objective", type=_OBJECTIVE, default="incremental", show_default=True)
@click.option("--order-value", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the random policies")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="budget–uplift PNG")
@click.option("--json", "as_json", is_flag=True)
def policy_eval_cmd(bundle, source, budgets, gamma, objective, order_value, seed, plot, as_json) -> None:
    """Score give-all, random, middle-band, MCKP and oracle policies on the simulator's potential outcomes."""
    from edgeintent.decide.run import parse_numbers, policy_table_lines, run_policy_eval

    b = parse_numbers(budgets, "--budgets") if budgets is not None else None
    r = run_policy_eval(bundle, source, b, gamma, objective, order_value, seed, plot)
    if as_json:
        _print_json(r)
        return
    console.print(f"[bold]{r['model']}[/] on {r['data']}: {r['decision_points']:,} decision points, "
                  f"{r['objective']} objective, gamma {r['gamma']:g}")  # fmt: skip
    for line in policy_table_lines(r):
        console.print(line, highlight=False)
    console.print("mckp's incremental purchases per unit cost, as a multiple of each other policy's:", highlight=False)
    for q in r["mckp_per_cost_ratio"]:
        console.print(f"  budget {q['budget']:,.0f}: " + ", ".join(f"{v:.2f}x {k[3:]}" for k, v in q.items()
                                                              if k.startswith("vs_")), highlight=False)  # fmt: skip
    for note in r["notes"]:
        console.print(f"note: {note}")
    if plot is not None:
        console.print(f"wrote {plot}")


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# export and parity
# ---------------------------------------------------------------------------------------------


@main.command("targets")
@click.option("--json", "as_json", is_flag=True)
def targets_cmd(as_json: bool) -> None:
    """List the export targets and what each can do on this host."""
    from edgeintent.exporters import capability_table

    rows = capability_table()
    if as_json:
        _print_json(rows)
        return
    table = Table(title="export targets")
    for col in ("target", "extension", "precisions", "quantization", "dynamic batch", "dynamic lengths", "runtime here",
                "runs here"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        runs = "yes" if r["runs_here"] else f"no: {r['why_not']}"
        table.add_row(r["target"], r["extension"], ", ".join(r["precisions"]), ", ".join(r["quantization"]),
                      str(r["dynamic_batch"]).lower(), str(r["dynamic_length"]).lower(), r["runtime"], runs)  # fmt: skip
    console.print(table)


@main.command("export")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--target", "target", default="all", show_default=True, help="onnx, coreml, mnn, a comma list or all")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@click.option("--set", "options", multiple=True,
              help="target export option KEY=VALUE, e.g. --set rnn=while-loop (mnn: convert RNNs without the native op)")
@click.option("--json", "as_json", is_flag=True)
def export_cmd(bundle: Path, target: str, precision: str, options: tuple[str, ...], as_json: bool) -> None:
    """Export a bundle's model into BUNDLE/exports/<target>/ and record it in the manifest."""
    from edgeintent.exporters import export_bundle, get_target, parse_targets

    names = parse_targets(target)
    opts = _parse_options(options)
    for key in opts:
        if not any(key in get_target(n).options for n in names):
            raise ConfigError(f"--set {key}: no export option {key!r} on {', '.join(names)}")
    metas = []
    for name in names:
        t0 = time.perf_counter()
        mine = {k: v for k, v in opts.items() if k in get_target(name).options}
        meta = export_bundle(bundle, name, precision, mine)
        meta["seconds"] = round(time.perf_counter() - t0, 2)
        metas.append(meta)
        if not as_json:
            console.print(f"exported {meta['artifact']} ({meta['bytes']:,} bytes, {precision}) in {meta['seconds']:.1f} s")
    if as_json:
        _print_json(metas)


@main.command("quantize")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--target", "target", required=True, help="onnx, coreml or mnn")
@click.option("--mode", default="auto", show_default=True, help="a recipe of the target (see README) or auto")
@click.option("--data", "source", default=None, help=f"{SOURCE_HELP} (default: the training data's validation users)")
@click.option("--budget-auc", type=float, default=0.002, show_default=True, help="auto: largest AUC drop allowed")
@click.option("--runs", type=click.IntRange(min=10), default=200, show_default=True, help="latency runs per candidate")
@click.option("--json", "as_json", is_flag=True)
def quantize_cmd(bundle: Path, target: str, mode: str, source: str | None, budget_auc: float, runs: int, as_json: bool) -> None:
    """Quantize a bundle's export for TARGET; report size, AUC, flips and latency per candidate."""
    from edgeintent.quantization import quantize_bundle

    report = quantize_bundle(bundle, target, mode, source, budget_auc, runs, say=None if as_json else console.print)
    if as_json:
        _print_json(report)
        return
    table = Table(title=f"quantize {target}: {report['rows']:,} decision points of {report['data']} ({report['users']} users)")
    for col in ("mode", "size", "vs fp32", *[f"AUC {t}" for t in report["candidates"][0]["tasks"]], "max |Δlogit|", "flips",
                "p50 ms", "within budget"):  # fmt: skip
        table.add_column(col)
    for c in report["candidates"]:
        aucs = [f"{v['auc']:.4f} ({v['auc_delta']:+.4f})" if v["auc"] is not None else "n/a" for v in c["tasks"].values()]
        lat = c["latency"]["p50_ms"]
        table.add_row(c["mode"], f"{c['bytes'] / 1024:.0f} KB", f"{c['size_ratio']:.0%}", *aucs,
                      f"{max(v['logit_max_abs'] for v in c['tasks'].values()):.3g}",
                      f"{max(v['flip_share'] for v in c['tasks'].values()):.1%}",
                      "n/a" if lat is None else f"{lat:.3f}", "yes" if c["within_budget"] else "no")  # fmt: skip
    console.print(table)
    if "choice" in report:
        console.print(f"auto: {report['choice']}")
    console.print(f"installed: {', '.join(report['installed']) or 'nothing'} (report: exports/{target}/quantize-report.json)")


@main.command("parity")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--target", "target", default="all", show_default=True, help="onnx, coreml, mnn, a comma list or all (exported)")
@click.option("--device", default="host", show_default=True,
              help="host, or cpu-arm: the aarch64 builds of onnxruntime and MNN under qemu (`edgeintent devices setup cpu-arm` first)")
@click.option("--json", "as_json", is_flag=True)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write JUnit XML here")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
def parity_cmd(bundle: Path, target: str, device: str, as_json: bool, junit: Path | None, threads: int) -> None:
    """Check every exported artifact against torch on the golden set. Exit 0 pass, 1 breach, 2 usage error."""
    from edgeintent.exporters import parse_targets
    from edgeintent.parity import run_parity
    from edgeintent.parity.report import failures, junit_xml, table
    from edgeintent.toolkit.data.events import atomic_write_bytes

    targets = None if target.strip() == "all" else parse_targets(target)
    if device not in ("host", "cpu-arm"):
        raise ConfigError(f"--device {device}: choose host or cpu-arm")
    if device == "host":
        report = run_parity(bundle, targets, threads=threads)
    else:
        import contextlib

        status = err_console.status(f"parity on {device}: aarch64 runtimes under emulation (~60x slower than native)")
        with status if not as_json else contextlib.nullcontext():
            report = run_parity(bundle, targets, threads=threads, device=device)
    if junit is not None:
        atomic_write_bytes(junit, junit_xml(report))
    if as_json:
        _print_json(report)
    else:
        console.print(table(report))
        for skip in report.get("skipped", []):
            console.print(f"skipped {skip['target']} {skip['precision']}: {skip['why']}", highlight=False)
        for line in failures(report):
            err_console.print(line, highlight=False, soft_wrap=True)
        console.print("parity: [green]pass[/green]" if report["passed"] else "parity: [red]FAIL[/red]")
    if not report["passed"]:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# devices and bench
# ---------------------------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def devices(ctx: click.Context, as_json: bool) -> None:
    """List the device profiles bench emulates (sources in devices.md); `devices setup cpu-arm` builds
    the emulated ARM environment that `parity --device cpu-arm` runs in."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeintent.runtime_sim.devices import list_devices

    rows = [d.as_dict() for d in list_devices()]
    if as_json:
        _print_json(rows)
        return
    t = Table("device", "core", "threads", "speed vs host", "bandwidth vs host", "memory budget", "runtime", "reference device",
              title="device profiles (sources: devices.md)")  # fmt: skip
    for d in rows:
        t.add_row(d["name"], d["core"], str(d["threads"]), f"{d['speed_vs_host']:.3f}", f"{d['bandwidth_vs_host']:.3f}",
                  f"{d['memory_mb']} MB", d["runtime"], d["reference_device"])  # fmt: skip
    console.print(t)


@devices.command("setup")
@click.argument("device", type=click.Choice(["cpu-arm"]))
@click.option("--force", is_flag=True, help="rebuild from scratch")
@click.option("--json", "as_json", is_flag=True)
def devices_setup(device: str, force: bool, as_json: bool) -> None:
    """Build the emulated aarch64 environment once (qemu, arm64 Debian python, aarch64 onnxruntime
    and MNN wheels) in ~/.cache/edgeintent/cpu-arm ($EDGEINTENT_ARM_CACHE). Needs root the first time."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgeintent.runtimes import emulation

    t0 = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err_console, disable=as_json, transient=True) as bar:  # fmt: skip
        tasks = {s: bar.add_task(s, total=1, info="", start=False) for s in emulation.STEPS}

        def on_step(step: str, status: str) -> None:
            if status == "start":
                bar.start_task(tasks[step])
                bar.update(tasks[step], info="running")
            else:
                bar.start_task(tasks[step])
                bar.update(tasks[step], completed=1, info=status)

        summary = emulation.setup(force=force, on_step=on_step)
    summary["total_seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        _print_json(summary)
        return
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items())
    built = ", ".join(summary["built"]) or "nothing (cached)"
    rt = summary["runtimes"]
    console.print(f"{device} ready in {summary['total_seconds']:.0f} s (built: {built}; {steps}): "
                  f"{rt['machine']} python {rt['python']}, numpy {rt['numpy']}, onnxruntime {rt['onnxruntime']}, "
                  f"MNN {rt['MNN']} under {summary['qemu'].split(' (')[0]} -cpu {summary['cpu']}; "
                  f"{summary['bytes'] / 2**20:.0f} MB in {summary['cache']}", highlight=False)  # fmt: skip


@main.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--device", default="cpu-arm", show_default=True, help="a profile from `edgeintent devices`")
@click.option("--targets", default="all", show_default=True, help="onnx, coreml, mnn, a comma list or all (exported)")
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True, help="steady runs per artifact")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--memory-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="override the profile's memory budget (MB the model may add to its process)")
@click.option("--no-parity", is_flag=True, help="skip the parity gate (status column says 'parity not run')")
@click.option("--deterministic", is_flag=True, help="also count instructions per inference under valgrind's callgrind (slow)")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="latency histogram PNG")
@click.option("--json", "as_json", is_flag=True)
def bench_cmd(bundle: Path, device: str, targets: str, runs: int, warmup: int, memory_mb: float | None, no_parity: bool,
              deterministic: bool, plot: Path | None, as_json: bool) -> None:  # fmt: skip
    """Measure every exported artifact in its runtime on this host under DEVICE's limits; project to DEVICE."""
    from edgeintent.exporters import parse_targets
    from edgeintent.runtime_sim.bench import BenchConfig, run_bench
    from edgeintent.runtime_sim.devices import get_device

    get_device(device)
    if plot is not None:
        _check_out_dir(plot)
    names = None if targets.strip() == "all" else tuple(parse_targets(targets))
    cfg = BenchConfig(device=device, targets=names, runs=runs, warmup=warmup, memory_mb=memory_mb, parity=not no_parity,
                      deterministic=deterministic)  # fmt: skip
    report = run_bench(bundle, cfg, say=None if as_json else err_console.print, plot=plot)
    if as_json:
        _print_json(report)
        return
    from edgeintent.runtime_sim.report import bench_table, summary_lines

    console.print(bench_table(report))
    for line in summary_lines(report):
        console.print(line, highlight=False)
    if plot is not None:
        console.print(f"wrote {plot}")


@main.command()
@click.option("--users", type=click.IntRange(min=50), default=3000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def demo(users: int, seed: int, out_dir: Path, epochs: int, as_json: bool) -> None:
    """Run every stage built so far on the simulator: simulate → fit spec → featurize → train → evaluate."""
    from edgeintent.toolkit.pipeline import run_demo

    result = run_demo(users=users, seed=seed, out_dir=out_dir, say=None if as_json else console.print, epochs=epochs)
    if as_json:
        _print_json(result)


if __name__ == "__main__":  # pragma: no cover - `python -m edgeintent.cli`
    main()
