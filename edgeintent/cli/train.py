"""``edgeintent models``, ``train`` and ``eval`` (the models and training floors' commands)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from edgeintent.cli.common import (
    check_out_dir,
    console,
    err_console,
    lazy_option,
    main,
    parse_options,
    print_json,
    source_help,
    split_list,
)
from edgeintent.cli.features import engine_help
from edgeintent.errors import ConfigError

#: ``eval --users``: which decision points to score (the trainer's ``evaluation_rows`` accepts these)
EVAL_USERS = ("auto", "valid", "all")
#: ``train --rnn``: the recurrent cells dipn and iidn take
RNN_CELLS = ("gru", "lstm")


def _model_help() -> str:
    from edgeintent.toolkit.models import list_models

    return f"a name from `edgeintent models`: {', '.join(list_models())}"


@main.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(as_json: bool) -> None:
    """List the registered models with parameter count and weight size (on a simulator FeatureSpec)."""
    from edgeintent.toolkit.models import describe_models

    rows = describe_models()
    if as_json:
        print_json(rows)
        return
    t = Table("model", "kind", "tasks", "parameters", "weights", "description")
    for r in rows:
        size = "after fit" if r["weight_bytes"] is None else f"{r['weight_bytes'] / 1024:.0f} KB"
        params = "after fit" if r["parameters"] is None else f"{r['parameters']:,}"
        t.add_row(r["name"], r["kind"], ",".join(r["tasks"]), params, size, r["description"])
    console.print(t)
    console.print("parameters and fp32 weights for all three streams of a FeatureSpec fitted on sim:500")


@main.command("train")
@lazy_option("--model", "model_name", required=True, help=_model_help)
@lazy_option("--data", "source", required=True, help=source_help)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="bundle directory")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--pos-weight", default="auto", show_default=True, help="auto, none or a number")
@click.option("--streams", default=None, help="comma-separated subset, e.g. cloud (default: all in the data)")
@click.option("--tasks", default=None, help="comma-separated labels, e.g. buy_rt,buy_long")
@click.option("--rnn", type=click.Choice(RNN_CELLS), default=None,
              help="recurrent cell for dipn / iidn (lstm lets int8 quantization cover the recurrent weights)")
@click.option("--set", "options", multiple=True, help="model option KEY=VALUE, e.g. --set inter=false")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace an existing bundle")
@lazy_option("--engine", default="local", show_default=True, help=engine_help)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Ray Train workers (--engine ray)")
@click.option("--micro-batches", "micro_batches", type=click.IntRange(min=1), default=None,
              help="slices each batch is computed in, a multiple of the workers (default: 1; --engine ray: --workers)")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="time limit of each Ray job in seconds")
@click.option("--json", "as_json", is_flag=True)
def train_cmd(model_name, source, out, epochs, batch_size, lr, seed, patience, pos_weight, streams, tasks, rnn, options,
              threads, overwrite, engine, workers, micro_batches, timeout_s, as_json) -> None:  # fmt: skip
    """Train a model on SOURCE (split by user) and write a verified bundle to OUT."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    check_out_dir(out)
    from edgeintent.engines.featurize import ENGINES

    ENGINES.get(engine)  # an unknown engine is a one-line error before any work
    if micro_batches is None:
        micro_batches = workers if engine == "ray" else 1
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
                      pos_weight=pos_weight, threads=threads, micro_batches=micro_batches)  # fmt: skip
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err_console, disable=as_json, transient=True) as bar:  # fmt: skip
        task = bar.add_task(f"train {model_name}", total=epochs, info="featurizing")

        def on_epoch(row: dict) -> None:
            bar.update(task, completed=row["epoch"],
                       info=f"epoch {row['epoch']} loss {row['loss']:.4f} valid AUC {row['valid_auc']:.4f}")  # fmt: skip

        kwargs = dict(streams=split_list(streams), tasks=split_list(tasks), overwrite=overwrite, on_epoch=on_epoch,
                      options={**parse_options(options), **({"rnn": rnn} if rnn else {})})  # fmt: skip
        if engine == "ray":
            from edgeintent.engines.ray_train import train_bundle_on_ray

            summary = train_bundle_on_ray(model_name, source, out, cfg, workers, timeout_s=timeout_s, **kwargs)
        else:
            summary = train_bundle(model_name, source, out, cfg, **kwargs)
    if as_json:
        print_json(summary)
        return
    console.print(f"{summary['model']} on {', '.join(summary['streams'])}: {summary['parameters']:,} parameters, "
                  f"{summary['weight_bytes'] / 1024:.0f} KB, {summary['train_seconds']:.0f} s, best epoch {summary['best_epoch']}")  # fmt: skip
    print_metrics(summary["valid"], "validation users")
    if "funnel" in summary:
        print_funnel(summary["funnel"])
    if "probe" in summary:
        print_probe(summary["probe"], "validation users")
    console.print(f"wrote bundle {out}")


def print_probe(probe: dict, what: str) -> None:
    """An embedding model's linear probes (find): per label, AUC and KS on the users the probe was not fitted on."""
    t = Table("label", "fitted on", "scored on", "rate", "AUC", "KS", title=f"linear probe of the embedding ({what}; fit 1/5, score 4/5)")
    for name, r in probe.items():
        t.add_row(name, f"{r['fit_rows']:,}", f"{r['scored_rows']:,}", f"{r['rate']:.2%}", f"{r['auc']:.4f}", f"{r['ks']:.3f}")
    console.print(t)


def print_metrics(tasks: dict, what: str) -> None:
    """One row per task: n, rate, AUC with its bootstrap CI, KS, logloss, ECE (nothing for a model without tasks)."""
    if not tasks:
        return
    t = Table("task", "n", "rate", "AUC", "95% CI", "KS", "logloss", "ECE", title=what)
    for name, r in tasks.items():
        lo, hi = r["auc_ci"]
        t.add_row(name, f"{r['n']:,}", f"{r['rate']:.2%}", f"{r['auc']:.4f}", f"{lo:.3f}–{hi:.3f}", f"{r['ks']:.3f}",
                  f"{r['logloss']:.4f}", f"{r['ece']:.4f}")  # fmt: skip
    console.print(t)


def print_funnel(funnel: dict) -> None:
    """One row per funnel step: AUC on all rows, AUC given the previous step, ECE, share with p_k > p_{k-1}."""
    t = Table("step", "rate", "mean p", "AUC (all)", "95% CI", "AUC | prev step", "95% CI", "ECE", "p_k > p_k-1",
              title="funnel (validation rows, upstream first)")  # fmt: skip
    for r in funnel["steps"]:
        ci = lambda key: "–" if key not in r else f"{r[key][0]:.3f}–{r[key][1]:.3f}"  # noqa: E731
        t.add_row(r["task"], f"{r['rate']:.2%}", f"{r['mean_p']:.2%}", f"{r['auc']:.4f}", ci("auc_ci"),
                  f"{r['auc_given_prev']:.4f}" if "auc_given_prev" in r else "–", ci("auc_given_prev_ci"),
                  f"{r['ece']:.4f}", f"{r['violation']:.3%}" if "violation" in r else "–")  # fmt: skip
    console.print(t)
    b = funnel.get("order_breaks")
    if b:
        console.print(f"raw events out of funnel order: {b['rows']:,} of {b['buy_rows']:,} purchase rows had no "
                      f"add-to-cart between t and the purchase ({b['label']})")  # fmt: skip


@main.command("eval")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--data", "source", default=None,
             help=lambda: f"{source_help()} (default: the training data's validation users)")
@click.option("--users", type=click.Choice(EVAL_USERS), default="auto", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="ROC + calibration PNG")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(bundle: Path, source: str | None, users: str, plot: Path | None, as_json: bool) -> None:
    """Evaluate a bundle: AUC (bootstrap CI over users), KS, logloss and calibration per task."""
    from edgeintent.toolkit.training.trainer import evaluate_bundle

    if plot is not None:
        check_out_dir(plot)
    result = evaluate_bundle(bundle, source, users, plot)
    if as_json:
        print_json(result)
        return
    print_metrics(result["tasks"], f"{result['model']} on {result['data']} ({result['users']} users, {result['samples']:,} samples)")
    if "funnel" in result:
        print_funnel(result["funnel"])
    if "probe" in result:
        print_probe(result["probe"], f"{result['data']}, {result['users']} users")
    if plot is not None:
        console.print(f"wrote {plot}")
