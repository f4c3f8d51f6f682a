"""``edgeintent allocate`` and ``policy-eval``: coupon allocation and policy evaluation (logic in
:mod:`edgeintent.decide`)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeintent.cli.common import LazyChoice, console, lazy_option, main, print_json, source_help


def _objectives() -> tuple[str, ...]:
    from edgeintent.decide.allocation import OBJECTIVES

    return OBJECTIVES


def _sim_help() -> str:
    from edgeintent.toolkit.data.sources import SOURCES

    return f"{SOURCES.get('sim').help} (needs potential outcomes)"


_OBJECTIVE = LazyChoice(_objectives)


@main.command("allocate")
@click.option("--bundle", "bundle", type=click.Path(path_type=Path), required=True, help="bundle of a model with a coupon input (iidn)")
@lazy_option("--data", "source", required=True, help=source_help)
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
        print_json(r)
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
@lazy_option("--data", "source", required=True, help=_sim_help)
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
        print_json(r)
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
