"""``edgeintent target``: select users of a data source with a ``find`` bundle, from one sentence
(zero-shot) or with seed users (few-shot prompt tuning); the work is in ``toolkit.training.targeting``."""

from __future__ import annotations

from pathlib import Path

import click

from edgeintent.cli.common import check_out_dir, console, lazy_option, main, print_json, source_help


@main.command("target")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--data", "source", required=True, help=source_help)
@click.option("--demand", required=True, help='a sentence of the template language, e.g. "users who will buy in category 4756105"')
@click.option("--top", type=int, default=None, help="select the K best-scored users (default 100)")
@click.option("--threshold", type=float, default=None, help="select every user whose score (a cosine) is at least T")
@click.option("--seed-users", "positives", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of positive seed users (few-shot prompt tuning)")
@click.option("--negative-users", "negatives", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of negative seed users (few-shot prompt tuning)")
@click.option("--at", "at_ms", type=int, default=None, help="reference time in ms (default: right after the last event)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="users.parquet")
@click.option("--json", "as_json", is_flag=True)
def target_cmd(bundle, source, demand, top, threshold, positives, negatives, at_ms, seed, threads, out, as_json) -> None:
    """Score every user of SOURCE for DEMAND with a find BUNDLE and write the selection to OUT (Parquet)."""
    import pyarrow.parquet as pq

    from edgeintent.io import atomic_path
    from edgeintent.toolkit.training.targeting import target

    check_out_dir(out)
    table, summary = target(bundle, source, demand, top, threshold, positives, negatives, at_ms, seed, threads)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    summary["out"] = str(out)
    if as_json:
        print_json(summary)
        return
    console.print(f"{summary['mode']}: {summary['selected']:,} of {summary['users']:,} users selected for "
                  f"{demand!r} → {out}")  # fmt: skip
