"""``edgeintent demo``: every stage on the simulator; the work is :func:`edgeintent.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path

import click

from edgeintent.cli.common import console, main, print_json


@main.command()
@click.option("--users", type=click.IntRange(min=50), default=3000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def demo(users: int, seed: int, out_dir: Path, epochs: int, as_json: bool) -> None:
    """Run every stage built so far on the simulator: simulate → fit spec → featurize → train → evaluate."""
    from edgeintent.demo import run_demo

    result = run_demo(users=users, seed=seed, out_dir=out_dir, say=None if as_json else console.print, epochs=epochs)
    if as_json:
        print_json(result)
