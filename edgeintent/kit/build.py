"""Compiling the kit (host C compiler, or the aarch64 cross compiler) and running what was built.

The library builds with ``-std=c99 -Wall -Wextra -Werror -pedantic`` and ``-ffp-contract=off``
(no fused multiply-add: the float64 arithmetic must round exactly as numpy's does); never with
``-ffast-math``. ``arch="aarch64"`` cross-compiles a static binary with ``aarch64-linux-gnu-gcc``
(installed by ``edgeintent devices setup cpu-arm`` with the other host tools) and runs it under the
cpu-arm set-up's ``qemu-aarch64-static -cpu cortex-a76``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from edgeintent.errors import KitError
from edgeintent.runtimes.emulation import CPU, CROSS_CC, DEVICE, QEMU

CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-ffp-contract=off")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
ARCHES = ("host", "aarch64")


def compiler(arch: str = "host") -> str:
    """The C compiler for ``arch`` (``$CC`` or cc on the host), or a KitError saying how to get it."""
    if arch == "host":
        cc = os.environ.get("CC") or "cc"
        if shutil.which(cc) is None:
            raise KitError(f"the kit needs a C compiler; {cc!r} is not on PATH (install gcc or clang, or set CC)")
        return cc
    if arch == "aarch64":
        if shutil.which(CROSS_CC) is None:
            raise KitError(f"{CROSS_CC} is not installed; run: edgeintent devices setup {DEVICE} (as root, installs it with qemu)")
        return CROSS_CC
    raise KitError(f"unknown kit architecture {arch!r}; choose {' or '.join(ARCHES)}")


def compile_program(src: Path, main: str, out: Path, arch: str = "host", sanitize: bool = False,
                    defines: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Compile ``src/kit.c`` with ``src/<main>`` into the executable ``out``."""
    cc = compiler(arch)
    flags = [*CFLAGS, *(SANITIZE if sanitize else ()), *(f"-D{d}" for d in defines)]
    if arch == "aarch64":
        flags.append("-static")  # qemu then needs no aarch64 C library at run time
    return _compile([cc, *flags, "-o", str(out), str(src / "kit.c"), str(src / main), "-lm"], f"the kit ({Path(cc).name} {main})", out)


def compile_library(src: Path, out: Path) -> Path:
    """``src/kit.c`` as a shared library for this host (what ctypes loads: tests, bench)."""
    cc = compiler("host")
    return _compile([cc, *CFLAGS, "-shared", "-fPIC", "-o", str(out), str(src / "kit.c"), "-lm"], "the kit library", out)


def _compile(cmd: list[str], what: str, out: Path) -> Path:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln), lines[0] if lines else "no output")
        raise KitError(f"compiling {what} failed: {first.strip()}")
    return out


def runtime_label(arch: str) -> str:
    """What parity rows name as the kit's runtime on ``arch``."""
    return f"C99 kit, {Path(compiler(arch)).name}" + ("" if arch == "host" else f" + {QEMU} -cpu {CPU}")


def machine(arch: str) -> str:
    """The machine a kit built for ``arch`` runs on (this host's, or aarch64 under qemu)."""
    return platform.machine() if arch == "host" else "aarch64"


def command(binary: Path, arch: str = "host") -> list[str]:
    """How to start ``binary``: directly, or under the cpu-arm qemu."""
    if arch == "host":
        return [str(binary)]
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise KitError(f"{QEMU} is not installed; run: edgeintent devices setup {DEVICE}")
    return [qemu, "-cpu", CPU, str(binary)]


def run(binary: Path, args: list[str], arch: str = "host", timeout: float = 600,
        cpus: list[int] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run a kit program (pinned to ``cpus`` if given); a KitError (with its last line of stderr) if it fails."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    try:
        proc = subprocess.run([*command(binary, arch), *args], capture_output=True, text=True, timeout=timeout,
                              preexec_fn=pin)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise KitError(f"{binary.name} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise KitError(f"{binary.name} failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")
    return proc
