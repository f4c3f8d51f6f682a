"""``edgeintent rank fit | score | export``: scenario coarse ranking (logic in :mod:`edgeintent.rank`)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeintent.cli.common import console, lazy_option, main, print_json, source_help, targets_help


@main.group()
def rank() -> None:
    """Scenario coarse ranking: decayed interests, tag–category itemsets, context stumps, fused per industry."""


@rank.command("fit")
@lazy_option("--data", "source", required=True, help=source_help)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="rank bundle directory")
@click.option("--vocab", type=click.IntRange(min=2), default=512, show_default=True, help="categories kept")
@click.option("--industries", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--half-life-h", type=click.FloatRange(min=0, min_open=True), default=72.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def fit_cmd(source, out_dir, vocab, industries, half_life_h, seed, overwrite, as_json) -> None:
    """Fit the scorers on the training users, judge them on held-out users, write a verified bundle."""
    from edgeintent.rank import RankConfig
    from edgeintent.rank.run import run_fit

    cfg = RankConfig(vocab=vocab, industries=industries, half_life_h=half_life_h, seed=seed)
    m = run_fit(source, out_dir, cfg, overwrite=overwrite, say=None if as_json else console.print)
    if as_json:
        print_json(m)
        return
    console.print(f"held-out: {m['requests']} requests of {m['users']} users (recall@10 / NDCG@10)")
    for name in ("interest", "context", "keyword", "recency", "fusion", "popularity", "recency+popularity"):
        console.print(f"  {name:<18} {m[name]['recall@10']:.3f} / {m[name]['ndcg@10']:.3f}")
    console.print(f"wrote {out_dir}")


@rank.command("score")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--data", "source", required=True, help=source_help)
@click.option("--candidates", type=click.Path(path_type=Path), required=True, help=".csv/.parquet with user_id, category_id")
@click.option("--context-budget", type=click.IntRange(min=0), default=None,
              help="score the context scenario with a round budget per request and a cache per (industry, context hour) "
                   "(the source's request-time scheme; off: every industry's stumps)")
@click.option("--json", "as_json", is_flag=True)
def score_cmd(bundle, source, candidates, context_budget, as_json) -> None:
    """Score candidate categories for users at the end of their history in the data."""
    from edgeintent.rank.run import run_score

    rows = run_score(bundle, source, candidates, context_budget)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("user_id", "category_id", "score", "interest", "context", "keyword", "recency")
    for r in rows:
        table.add_row(str(r["user_id"]), str(r["category_id"]), *(f"{r[k]:.4f}" for k in ("score", "interest", "context", "keyword", "recency")))
    console.print(table)


@rank.command("export")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--target", "targets", default="all", show_default=True, help=lambda: targets_help(" (model targets)"))
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def export_cmd(bundle, targets, precision, as_json) -> None:
    """Export the on-device scorer and check it against torch (parity); artifacts that pass go into the bundle."""
    import sys

    from edgeintent.exporters import list_targets, parse_targets
    from edgeintent.rank.run import run_export

    names = [t for t in parse_targets(targets, precision) if t in list_targets("model")] if targets.strip() == "all" else parse_targets(targets)
    res = run_export(bundle, names, precision)
    if as_json:
        print_json(res)
    else:
        for r in res:
            mark = "pass" if r["passed"] else "FAIL"
            console.print(f"{r['target']:<7} {r['precision']} {r['runtime']:<14} logit max abs {r['batch']['logit_max_abs']:.2e}  {mark}"
                          + ("" if r["passed"] else "  " + "; ".join(r["reasons"])))  # fmt: skip
    if not all(r["passed"] for r in res):
        sys.exit(1)
