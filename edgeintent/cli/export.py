"""``edgeintent targets`` and ``export`` (the exporters floor's commands)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from edgeintent.cli.common import LazyChoice, console, lazy_option, main, parse_options, print_json, targets_help
from edgeintent.errors import ConfigError


def _precisions() -> tuple[str, ...]:
    """Every precision some target exports, in the targets' order (``export --precision``)."""
    from edgeintent.exporters import TARGETS

    return tuple(dict.fromkeys(p for t in TARGETS.values() for p in t.precisions))


@main.command("targets")
@click.option("--json", "as_json", is_flag=True)
def targets_cmd(as_json: bool) -> None:
    """List the export targets and what each can do on this host."""
    from edgeintent.quantization.capabilities import capability_table

    rows = capability_table()
    if as_json:
        print_json(rows)
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
@lazy_option("--target", "target", default="all", show_default=True, help=targets_help)
@click.option("--precision", type=LazyChoice(_precisions), default="fp32", show_default=True)
@click.option("--set", "options", multiple=True,
              help="target export option KEY=VALUE, e.g. --set rnn=while-loop (mnn: convert RNNs without the native op)")
@click.option("--json", "as_json", is_flag=True)
def export_cmd(bundle: Path, target: str, precision: str, options: tuple[str, ...], as_json: bool) -> None:
    """Export a bundle's model into BUNDLE/exports/<target>/ and record it in the manifest."""
    from edgeintent.exporters import export_bundle, get_target, parse_targets

    names = parse_targets(target, precision)
    opts = parse_options(options)
    for key in opts:
        if not any(key in get_target(n).options for n in names):
            raise ConfigError(f"--set {key}: no export option {key!r} on {', '.join(names)}")
    metas = []
    for name in names:
        t0 = time.perf_counter()
        mine = {k: v for k, v in opts.items() if k in get_target(name).options}
        meta = export_bundle(bundle, name, precision, mine).to_json()
        meta["seconds"] = round(time.perf_counter() - t0, 2)
        metas.append(meta)
        if not as_json:
            console.print(f"exported {meta['artifact']} ({meta['bytes']:,} bytes, {precision}) in {meta['seconds']:.1f} s")
    if as_json:
        print_json(metas)
