"""``edgeintent parity``: the gate (exit 0 pass, 1 breach, 2 usage error); logic in :mod:`edgeintent.parity`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from edgeintent.cli.common import console, err_console, lazy_option, main, print_json, targets_help


def _emulated() -> str:
    """The device name of the emulated ARM environment (``devices setup``)."""
    from edgeintent.runtimes.emulation import DEVICE

    return DEVICE


def _device_help() -> str:
    from edgeintent.runtimes import RUNTIMES

    arm = _emulated()
    labels = list(dict.fromkeys(RUNTIMES.get(n).label for n in RUNTIMES.names() if RUNTIMES.get(n).arm))
    return (f"host, or {arm}: the aarch64 builds of {', '.join(labels)} under qemu "
            f"(`edgeintent devices setup {arm}` first)")


@main.command("parity")
@click.argument("bundle", type=click.Path(path_type=Path))
@lazy_option("--target", "target", default="all", show_default=True, help=lambda: targets_help(" (exported)"))
@lazy_option("--device", default="host", show_default=True, help=_device_help)
@click.option("--json", "as_json", is_flag=True)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write JUnit XML here")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--featurizer-dump", "featurizer_dump", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="check an app's own featurizer port instead: its output on exports/kit/kit/cases.bin (docs/kit.md)")
def parity_cmd(bundle: Path, target: str, device: str, as_json: bool, junit: Path | None, threads: int,
               featurizer_dump: Path | None) -> None:  # fmt: skip
    """Check every exported artifact against torch on the golden set. Exit 0 pass, 1 breach, 2 usage error."""
    from edgeintent.errors import ConfigError
    from edgeintent.exporters import parse_targets
    from edgeintent.io import atomic_write_bytes
    from edgeintent.parity import featurizer_dump_report, run_parity
    from edgeintent.parity.report import failures, junit_xml, table
    from edgeintent.runtimes.providers import provider

    if featurizer_dump is not None and (target.strip() != "all" or device != "host"):
        raise ConfigError("--featurizer-dump checks the dump file alone; drop --target and --device")
    targets = None if target.strip() == "all" else parse_targets(target)
    runtimes = provider(device)  # an unknown device is a one-line ConfigError naming the choices
    status = contextlib.nullcontext() if as_json or device == "host" else \
        err_console.status(f"parity on {device}: aarch64 runtimes under emulation (~60x slower than native)")
    with status:
        if featurizer_dump is not None:
            report = featurizer_dump_report(bundle, featurizer_dump)
        else:
            report = run_parity(bundle, targets, threads=threads, provider=runtimes)
            if "kit" in report["targets"]:  # the kit's decision rule against decision.json's Python rule
                from edgeintent.decide.kit_rule import check_kit_rule
                from edgeintent.parity import featurizer_results

                rows = [r.as_dict() for r in featurizer_results(check_kit_rule(bundle, device), "kit")]
                report["results"] += rows
                report["passed"] = report["passed"] and all(r["passed"] for r in rows)
    if junit is not None:
        atomic_write_bytes(junit, junit_xml(report))
    if as_json:
        print_json(report)
    else:
        console.print(table(report))
        for skip in report.get("skipped", []):
            console.print(f"skipped {skip['target']} {skip['precision']}: {skip['why']}", highlight=False)
        for line in failures(report):
            err_console.print(line, highlight=False, soft_wrap=True)
        console.print("parity: [green]pass[/green]" if report["passed"] else "parity: [red]FAIL[/red]")
    if not report["passed"]:
        sys.exit(1)
