"""``edgeintent quantize`` (the quantization floor's command) and its candidate table."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from edgeintent.cli.common import console, lazy_option, main, print_json, source_help, words


def _target_help() -> str:
    from edgeintent.exporters import list_targets

    return words(list_targets())


@main.command("quantize")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--target", "target", required=True, help=_target_help)
@click.option("--mode", default="auto", show_default=True, help="a recipe of the target (`edgeintent targets` lists them) or auto")
@lazy_option("--data", "source", default=None,
             help=lambda: f"{source_help()} (default: the training data's validation users)")
@click.option("--budget-auc", type=float, default=0.002, show_default=True, help="auto: largest AUC drop allowed")
@click.option("--runs", type=click.IntRange(min=10), default=200, show_default=True, help="latency runs per candidate")
@click.option("--json", "as_json", is_flag=True)
def quantize_cmd(bundle: Path, target: str, mode: str, source: str | None, budget_auc: float, runs: int, as_json: bool) -> None:
    """Quantize a bundle's export for TARGET; report size, AUC, flips and latency per candidate."""
    from edgeintent.quantization.select import quantize_bundle

    report = quantize_bundle(bundle, target, mode, source, budget_auc, runs, say=None if as_json else console.print)
    if as_json:
        print_json(report)
        return
    _print_candidates(report, target)


def _print_candidates(report: dict, target: str) -> None:
    table = Table(title=f"quantize {target}: {report['rows']:,} decision points of {report['data']} ({report['users']} users)")
    for col in ("mode", "size", "vs fp32", *[f"AUC {t}" for t in report["candidates"][0]["tasks"]], "max |Δlogit| (|Δemb|)", "flips",
                "p50 ms", "within budget"):  # fmt: skip
        table.add_column(col)
    for c in report["candidates"]:
        aucs = [f"{v['auc']:.4f} ({v['auc_delta']:+.4f})" if v["auc"] is not None else "n/a" for v in c["tasks"].values()]
        lat = c["latency"]["p50_ms"]
        table.add_row(c["mode"], f"{c['bytes'] / 1024:.0f} KB", f"{c['size_ratio']:.0%}", *aucs,
                      f"{max(v.get('logit_max_abs', v.get('emb_max_abs', 0.0)) for v in c['tasks'].values()):.3g}",
                      f"{max(v.get('flip_share') or 0.0 for v in c['tasks'].values()):.1%}",
                      "n/a" if lat is None else f"{lat:.3f}", "yes" if c["within_budget"] else "no")  # fmt: skip
    console.print(table)
    if "choice" in report:
        console.print(f"auto: {report['choice']}")
    console.print(f"installed: {', '.join(report['installed']) or 'nothing'} (report: exports/{target}/quantize-report.json)")
