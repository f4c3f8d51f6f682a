"""``edgeintent bench``: measure exported artifacts under a device profile (logic in :mod:`edgeintent.runtime_sim`)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeintent.cli.common import check_out_dir, console, err_console, lazy_option, main, print_json, targets_help


def _device_help() -> str:
    from edgeintent.runtime_sim.devices import DEVICES

    return f"a profile from `edgeintent devices`: {', '.join(DEVICES.names())}"


@main.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--device", default="cpu-arm", show_default=True, help=_device_help)
@lazy_option("--targets", default="all", show_default=True, help=lambda: targets_help(" (exported)"))
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True, help="steady runs per artifact")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--memory-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="override the profile's memory budget (MB the model may add to its process)")
@click.option("--no-parity", is_flag=True, help="skip the parity gate (status column says 'parity not run')")
@click.option("--deterministic", is_flag=True, help="also count instructions per inference under valgrind's callgrind (slow)")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="latency per artifact PNG (box plot, log scale)")
@click.option("--wide", is_flag=True, help="every column (init, first, p90, mean, projections, runtime, vs torch)")
@click.option("--json", "as_json", is_flag=True)
def bench_cmd(bundle: Path, device: str, targets: str, runs: int, warmup: int, memory_mb: float | None, no_parity: bool,
              deterministic: bool, plot: Path | None, wide: bool, as_json: bool) -> None:  # fmt: skip
    """Measure every exported artifact in its runtime on this host under DEVICE's limits; project to DEVICE."""
    from edgeintent.exporters import parse_targets
    from edgeintent.runtime_sim.bench import BenchConfig, run_bench
    from edgeintent.runtime_sim.devices import get_device

    get_device(device)
    if plot is not None:
        check_out_dir(plot)
    names = None if targets.strip() == "all" else tuple(parse_targets(targets))
    cfg = BenchConfig(device=device, targets=names, runs=runs, warmup=warmup, memory_mb=memory_mb,
                      deterministic=deterministic)  # fmt: skip
    say = None if as_json else err_console.print

    def gate(exported: list[str]) -> dict:
        from edgeintent.parity import run_parity

        if say is not None:
            say("    parity gate on the golden set …")
        return run_parity(bundle, exported, diagnose=False)

    report = run_bench(bundle, cfg, say=say, plot=plot, gate=None if no_parity else gate)
    if as_json:
        print_json(report)
        return
    from edgeintent.runtime_sim.report import bench_table, summary_lines

    console.print(bench_table(report, wide=wide))
    for line in summary_lines(report):
        console.print(line, highlight=False)
    if plot is not None:
        console.print(f"wrote {plot}")
