"""``edgeintent data``: simulate, inspect and calibrate event data (the data floor's commands)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from edgeintent.cli.common import console, main, print_json


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
    from edgeintent.toolkit.data.simulate_file import simulate_to_file

    t0 = time.perf_counter()
    summary = simulate_to_file(users, seed, out, progress=not as_json)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        print_json(summary)
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
    from edgeintent.toolkit.features.inspect import inspect_source

    report = inspect_source(source)
    if as_json:
        print_json(report)
        return
    _print_inspect(report)


def _rate_text(label: str, info: dict, streams) -> str:
    """A label's rate, or why there is none: the label needs a stream the data lacks, or no decision
    point has it observed (e.g. every horizon runs past the end of the data)."""
    from edgeintent.toolkit.features.inspect import label_defined

    if info["rate"] is not None:
        return f"{info['rate']:.2%}"
    return "n/a (unobserved)" if label_defined(label, streams) else "n/a (no cloud stream)"


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
        lt.add_row(name, info["horizon"], _rate_text(name, info, r["streams"]), f"{info['observed']:.1%}")
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
    from edgeintent.toolkit.data import calibration

    print_json(calibration.calibrate(hmog=hmog, taobao=taobao))
