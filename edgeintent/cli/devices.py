"""``edgeintent devices`` (the device profiles bench emulates) and ``devices setup`` (the emulated ARM
environment parity and bench can run in)."""

from __future__ import annotations

import time

import click
from rich.table import Table

from edgeintent.cli.common import LazyChoice, console, err_console, main, print_json


def _setup_devices() -> tuple[str, ...]:
    """What ``devices setup`` can build: the emulation module's device."""
    from edgeintent.runtimes.emulation import DEVICE

    return (DEVICE,)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def devices(ctx: click.Context, as_json: bool) -> None:
    """List the device profiles bench emulates (sources in devices.md); `devices setup cpu-arm` builds
    the emulated ARM environment that `parity --device cpu-arm` runs in."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeintent.runtime_sim.devices import list_devices
    from edgeintent.runtime_sim.host import host_record

    host = host_record()  # the speeds are relative to this host, measured (a ~0.2 s calibration block)
    rows = [d.as_dict(host) | {"host": host.as_dict()} for d in list_devices()]
    if as_json:
        print_json(rows)
        return
    t = Table("device", "core", "threads", "speed vs host", "bandwidth vs host", "fp32 check range", "memory budget",
              "runtime", "reference device", title="device profiles (sources: devices.md)",
              caption=f"host: {host.label}; check range = projected / published on held-out rows")  # fmt: skip
    for d in rows:
        rng = d["check_range"]
        t.add_row(d["name"], d["core"], str(d["threads"]), f"{d['speed_vs_host']:.3f}", f"{d['bandwidth_vs_host']:.3f}",
                  "–" if rng is None else f"{rng[0]:.2f}–{rng[1]:.2f}", f"{d['memory_mb']} MB", d["runtime"],
                  d["reference_device"])  # fmt: skip
    console.print(t)


@devices.command("setup")
@click.argument("device", type=LazyChoice(_setup_devices))
@click.option("--force", is_flag=True, help="rebuild from scratch")
@click.option("--json", "as_json", is_flag=True)
def devices_setup(device: str, force: bool, as_json: bool) -> None:
    """Build the emulated aarch64 environment once (qemu, arm64 Debian python, aarch64 onnxruntime,
    MNN and, when the host has it, ai-edge-litert wheels) in ~/.cache/edgeintent/cpu-arm ($EDGEINTENT_ARM_CACHE). Needs root the first time."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgeintent.runtimes import emulation

    t0 = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err_console, disable=as_json, transient=True) as bar:  # fmt: skip
        tasks = {s: bar.add_task(s, total=1, info="", start=False) for s in emulation.STEPS}

        def on_step(step: str, status: str) -> None:
            if status == "start":
                bar.start_task(tasks[step])
                bar.update(tasks[step], info="running")
            else:
                bar.start_task(tasks[step])
                bar.update(tasks[step], completed=1, info=status)

        summary = emulation.setup(force=force, on_step=on_step)
    summary["total_seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        print_json(summary)
        return
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items())
    built = ", ".join(summary["built"]) or "nothing (cached)"
    rt = summary["runtimes"]
    wheels = ", ".join(f"{k} {v}" for k, v in rt.items() if k not in ("machine", "python", "libc"))
    console.print(f"{device} ready in {summary['total_seconds']:.0f} s (built: {built}; {steps}): "
                  f"{rt['machine']} python {rt['python']}, {wheels} "
                  f"under {summary['qemu'].split(' (')[0]} -cpu {summary['cpu']}; "
                  f"{summary['bytes'] / 2**20:.0f} MB in {summary['cache']}", highlight=False)  # fmt: skip
