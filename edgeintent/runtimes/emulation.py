"""cpu-arm: the real aarch64 builds of onnxruntime, MNN and LiteRT, run under qemu user-mode emulation.

Phones run ARM builds of the runtimes, whose kernels differ from x86's (NEON paths, fp16
arithmetic with MNN's ``precision=low``). This module builds, once, an emulated aarch64
environment in a cache directory and runs exported artifacts in it:

- ``qemu-aarch64-static`` and ``debootstrap`` from Debian (``apt-get``), and the aarch64 cross
  compiler the phone kit is built with (``gcc-aarch64-linux-gnu``, ``libc6-dev-arm64-cross``);
- an arm64 Debian root file system with python3 (``debootstrap --foreign``: the first stage
  unpacks the essential packages; we unpack python's packages ourselves, no second stage, no chroot);
- the aarch64 wheels of numpy, onnxruntime and MNN, and of ai-edge-litert (LiteRT) when the host has
  it, pinned to the host's versions so that a difference between host and ARM parity comes from the
  architecture, not from a release (``pip install --target --platform manylinux…_aarch64
  --only-binary=:all:``, with every manylinux tag bookworm's glibc 2.36 accepts);
- an ARM ``/proc/cpuinfo`` inside the root: ``binfmt_misc`` is not needed because binaries run as
  ``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3``, and ``-L`` also redirects the runtime's
  open of ``/proc/cpuinfo`` to ``ROOT/proc/cpuinfo``. With the host's x86 cpuinfo, onnxruntime's
  cpuinfo library finds no ARM processor and the import segfaults.

The emulated CPU is a Cortex-A76 (``-cpu cortex-a76``: ARMv8.2 with fp16 arithmetic and dot
product, no SVE), the core of mid- and high-end phones since 2019. Emulation is ~60x slower than
native: it is for parity, never for timing.

Each artifact runs in ONE long-lived emulated python (:class:`WorkerRunner` over
``worker.py``), which imports only numpy and the runtime; feeds and outputs cross the pipes
as ``.npz``. The torch reference stays on the host.

The environment records what it has in ``state.json``: ``wheels`` (the requirements installed),
``site`` (every distribution in the aarch64 site, with its version) and ``probe`` (the runtimes that
import under emulation, with their versions). A runtime whose wheel it lacks (LiteRT, when the host
has no ai-edge-litert) is reported by :meth:`ArmProvider.supports` with how to add it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeintent.errors import ConfigError, EmulationError, ShapeRefused
from edgeintent.runtimes import RUNTIMES, Artifact, Session
from edgeintent.runtimes import worker as arm_worker

DEVICE = "cpu-arm"
ENV_VAR = "EDGEINTENT_ARM_CACHE"
MIRROR_VAR = "EDGEINTENT_DEBIAN_MIRROR"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CPU = "cortex-a76"
PYTHON = "usr/bin/python3"
QEMU = "qemu-aarch64-static"
APT_PACKAGES = ("qemu-user-static", "debootstrap")
#: the aarch64 cross compiler the phone kit (edgeintent.kit) is built with for this device, and what
#: each package provides (installed with the host tools)
CROSS_CC = "aarch64-linux-gnu-gcc"
CROSS_PACKAGES = {"gcc-aarch64-linux-gnu": CROSS_CC, "libc6-dev-arm64-cross": "/usr/aarch64-linux-gnu/lib/libc.a"}
#: the root's glibc (Debian bookworm); the check step reads the real one and must find this
GLIBC = (2, 36)
#: every manylinux tag a bookworm aarch64 python accepts, newest first, as pip on bookworm itself would
#: (pip given one ``--platform`` takes that tag only): MNN ships manylinux2014 wheels, ai-edge-litert
#: manylinux_2_27, numpy and onnxruntime manylinux_2_28
PLATFORMS = (*(f"manylinux_2_{m}_aarch64" for m in range(GLIBC[1], 16, -1)), "manylinux2014_aarch64")
#: what the ARM side needs; pinned to the host's versions when the host has them, else the newest
WHEELS = ("numpy", "onnxruntime", "MNN")
#: installed only when the host has them, at the host's version (an environment without one still
#: builds; ``ArmProvider.supports`` then says how to add it)
OPTIONAL_WHEELS = ("ai-edge-litert",)
#: distribution → how the check step imports it and reads its version under emulation
PROBES = {"numpy": ("numpy", "numpy.__version__"), "onnxruntime": ("onnxruntime", "onnxruntime.__version__"),
          "MNN": ("MNN", "MNN.version()"),
          "ai-edge-litert": ("ai_edge_litert.interpreter", "importlib.metadata.version('ai-edge-litert')")}  # fmt: skip
#: Cortex-A76 as the Linux kernel reports it (features: what ``-cpu cortex-a76`` gives in HWCAP)
CPUINFO_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs"



def cache_dir() -> Path:
    """Where the environment lives: ``$EDGEINTENT_ARM_CACHE`` or ``~/.cache/edgeintent/cpu-arm``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "edgeintent" / DEVICE).resolve()


def wheel_pins() -> dict[str, str | None]:
    """``{package: version}`` of the wheels to install: the host's version, or None for the newest; an
    optional wheel only when the host has it."""
    from importlib import metadata

    pins: dict[str, str | None] = {}
    for pkg in (*WHEELS, *OPTIONAL_WHEELS):
        try:
            pins[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            if pkg in WHEELS:
                pins[pkg] = None
    return pins


def _recipe_key(pins: dict) -> str:
    """What the aarch64 site is built from: the pins and the platform tags (a cache built with another
    recipe is rebuilt, never reused)."""
    recipe = {"pins": pins, "platforms": PLATFORMS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Environment:
    """A built environment: run ``python`` as aarch64 with ``command``/``env``."""

    root: Path
    site: Path
    qemu: str
    cpu: str = CPU
    info: dict | None = None

    @property
    def python(self) -> Path:
        return self.root / PYTHON

    def command(self, *args: str) -> list[str]:
        return [self.qemu, "-cpu", self.cpu, "-L", str(self.root), str(self.python), *args]

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.root / "root"), "LANG": "C.UTF-8",
                "PYTHONPATH": str(self.site), "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip

    def run(self, code: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.command("-c", code), env=self.env(), capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------


def _state_path(cache: Path) -> Path:
    return cache / "state.json"


def _read_state(cache: Path) -> dict:
    try:
        return json.loads(_state_path(cache).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(cache: Path, state: dict) -> None:
    tmp = _state_path(cache).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(_state_path(cache))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _mirror() -> str:
    return os.environ.get(MIRROR_VAR, DEFAULT_MIRROR)


def _run(cmd: list[str], what: str, timeout: float, hint: str, reason: str = "broken", **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise EmulationError(f"{what}: {cmd[0]} not found; {hint}") from None
    except subprocess.TimeoutExpired:
        raise EmulationError(f"{what} did not finish in {timeout:.0f} s; {hint}", reason) from None
    if proc.returncode != 0:
        raise EmulationError(f"{what} failed (exit {proc.returncode}): {_last_line(proc.stderr or proc.stdout)}; {hint}", reason)
    return proc


def _missing_tools() -> list[str]:
    provides = {**dict(zip(APT_PACKAGES, (QEMU, "debootstrap"), strict=True)), **CROSS_PACKAGES}
    return [p for p, exe in provides.items() if not (Path(exe).is_file() if exe.startswith("/") else shutil.which(exe))]


def _host_tools() -> dict:
    qemu = shutil.which(QEMU)
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"qemu": qemu, "qemu_version": version}


def _step_host_tools() -> dict:
    missing = _missing_tools()
    if missing:
        if shutil.which("apt-get") is None:
            raise EmulationError(f"{DEVICE} needs {', '.join(missing)} and this host has no apt-get (Debian or Ubuntu)")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        hint = "is the Debian mirror reachable? (apt-get update)"
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:  # the package lists may be missing or stale: refresh once
            _run(["apt-get", "update"], "apt-get update", 900, hint, "network", env=env)
            _run(cmd, f"apt-get install {' '.join(missing)}", 900, hint, "network", env=env)
    return _host_tools()


def write_cpuinfo(root: Path, cpus: int | None = None) -> Path:
    """An ARM ``/proc/cpuinfo`` (Cortex-A76) inside ``root``, one block per host CPU."""
    n = cpus or os.cpu_count() or 1
    block = ("processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: " + CPUINFO_FEATURES + "\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n")  # fmt: skip
    proc = root / "proc"
    if proc.is_symlink():  # debootstrap links ROOT/proc to the host's /proc in some containers
        proc.unlink()
    proc.mkdir(parents=True, exist_ok=True)
    path = proc / "cpuinfo"
    path.write_text("\n".join(block.format(i=i) for i in range(max(1, n))) + "\n")
    return path


def _unpack(deb: Path, root: Path) -> None:
    """``dpkg-deb -x`` that keeps the merged-/usr links (``lib -> usr/lib``): plain tar replaces a
    symlinked directory with a real one, and the loader ``/lib/ld-linux-aarch64.so.1`` disappears."""
    hint = "the download may be corrupt; run: edgeintent devices setup cpu-arm --force"
    deb_proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "--keep-directory-symlink", "-f", "-", "-C", str(root)], stdin=deb_proc.stdout,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    deb_proc.stdout.close()
    err = deb_proc.stderr.read().decode(errors="replace")
    if deb_proc.wait() != 0 or tar.returncode != 0:
        raise EmulationError(f"unpacking {deb.name} failed: {_last_line(err or tar.stderr)}; {hint}")


def _step_rootfs(cache: Path, qemu: str) -> dict:
    root = cache / "root"
    tmp = cache / "root.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    mirror = _mirror()
    hint = f"is the Debian mirror {mirror} reachable? (set {MIRROR_VAR} to use another)"
    _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3", SUITE, str(tmp), mirror],
         f"debootstrap --arch=arm64 {SUITE}", 1800, hint, "network")  # fmt: skip
    # The first stage unpacked the essential packages; unpack the rest (python3 and its libraries)
    # without running their maintainer scripts: nothing here needs them.
    boot = tmp / "debootstrap"
    required = set((boot / "required").read_text().split())
    paths = dict(line.split(None, 1) for line in (boot / "debpaths").read_text().splitlines() if line.strip())
    for pkg in sorted(paths):
        if pkg not in required:
            _unpack(tmp / paths[pkg].strip().lstrip("/"), tmp)
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
        shutil.rmtree(tmp / junk, ignore_errors=True)
    write_cpuinfo(tmp)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    env = Environment(root, cache / "site", qemu)
    proc = env.run("import platform, sys; print(platform.machine(), platform.python_version())", timeout=120)
    if proc.returncode != 0 or not proc.stdout.startswith("aarch64"):
        raise EmulationError(f"the arm64 python does not start under {QEMU}: {_last_line(proc.stderr)}")
    machine, version = proc.stdout.split()
    return {"suite": SUITE, "mirror": mirror, "python": version, "machine": machine}


def _step_wheels(cache: Path, pins: dict[str, str | None], python: str) -> dict:
    site = cache / "site"
    tmp = cache / "site.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    major_minor = ".".join(python.split(".")[:2])
    reqs = [f"{pkg}=={v}" if v else pkg for pkg, v in pins.items()]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--target", str(tmp),
           *[a for p in PLATFORMS for a in ("--platform", p)], "--python-version", major_minor, "--implementation", "cp",
           "--abi", f"cp{major_minor.replace('.', '')}", "--only-binary=:all:", *reqs]  # fmt: skip
    _run(cmd, f"pip install of the aarch64 wheels ({', '.join(reqs)})", 1800, "is PyPI reachable?", "network")
    # console scripts are x86 shebangs into nothing; and MNN's (mnn, mnnconvert, mnnquant) must never run
    shutil.rmtree(tmp / "bin", ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    tmp.rename(site)
    return {"wheels": reqs, "site": _site_dists(site)}


def _site_dists(site: Path) -> dict[str, str]:
    """Every distribution installed in ``site`` (its ``*.dist-info``), with its version."""
    from importlib import metadata

    return {d.metadata["Name"]: d.version for d in sorted(metadata.distributions(path=[str(site)]),
                                                          key=lambda d: d.metadata["Name"].lower())}  # fmt: skip


def _probe(env: Environment, pkgs) -> dict:
    """Under emulation: the machine, python and glibc, and each of ``pkgs`` imported, with its version."""
    imports = ", ".join(sorted({"importlib.metadata", *(PROBES[p][0] for p in pkgs)}))
    versions = ", ".join(f"{p!r}: {PROBES[p][1]}" for p in pkgs)
    code = (f"import json, platform, {imports}\n"
            "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(),"
            f" 'libc': '-'.join(platform.libc_ver()), {versions}}}))")  # fmt: skip
    proc = env.run(code, timeout=600)
    # MNN's C++ code prints a CPU-feature line on the same stdout (flushed at exit, after ours)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), "")
    if proc.returncode != 0 or not line.startswith("{"):
        why = _last_line(proc.stderr) if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
        raise EmulationError(f"the aarch64 runtimes do not import under {QEMU} (exit {proc.returncode}): {why}; "
                             f"run: edgeintent devices setup {DEVICE} --force")  # fmt: skip
    return json.loads(line)


STEPS = ("host tools", "root file system", "aarch64 wheels", "check")


def setup(cache: Path | None = None, force: bool = False, on_step: Callable[[str, str], None] | None = None) -> dict:
    """Build the emulated aarch64 environment once; idempotent. Returns its description.

    ``on_step(step, status)`` is called with ``status`` ``"start"``, ``"done"`` or ``"cached"``.
    """
    cache = Path(cache) if cache else cache_dir()
    pins = wheel_pins()
    _, need = _needs(cache, force, pins)
    if any(need.values()) and not _is_root():
        todo = ", ".join(k for k, v in need.items() if v)
        raise EmulationError(f"devices setup {DEVICE} must run as root once (apt-get and debootstrap need it) to build: {todo}; "
                             f"the result is cached in {cache}", "root")  # fmt: skip
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmulationError(f"cannot create the cache directory {cache}: {exc.strerror} (set {ENV_VAR})") from None
    with _locked(cache):  # one builder at a time (two test workers, two shells); the second finds it built
        return _setup(cache, force, pins, on_step or (lambda step, status: None))


def _needs(cache: Path, force: bool, pins: dict) -> tuple[dict, dict[str, bool]]:
    """The recorded state and which steps must (re)build."""
    state = {} if force else _read_state(cache)
    need = {
        "host tools": bool(_missing_tools()),
        "root file system": state.get("rootfs", {}).get("suite") != SUITE or not (cache / "root" / PYTHON).exists(),
        "aarch64 wheels": state.get("wheels_key") != _recipe_key(pins) or not (cache / "site").is_dir(),
    }
    if need["root file system"]:
        need["aarch64 wheels"] = True
    return state, need


@contextlib.contextmanager
def _locked(cache: Path):
    """An exclusive ``flock`` on ``cache/.lock`` (none where the cache is not writable: nothing is built there)."""
    import fcntl

    try:
        fh = open(cache / ".lock", "a")  # noqa: SIM115 - held for the block
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _setup(cache: Path, force: bool, pins: dict, say: Callable[[str, str], None]) -> dict:
    state, need = _needs(cache, force, pins)  # again, under the lock: another process may have built it meanwhile
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[[], dict], needed: bool) -> dict | None:
        if not needed:
            say(name, "cached")
            return None
        say(name, "start")
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        say(name, "done")
        return out

    tools = step("host tools", _step_host_tools, need["host tools"]) or _host_tools()
    qemu = tools["qemu"]
    rootfs = step("root file system", lambda: _step_rootfs(cache, qemu), need["root file system"])
    if rootfs:
        state = {"rootfs": rootfs}
        _write_state(cache, state)
    write_cpuinfo(cache / "root")  # cheap; follows the host's CPU count
    python = state["rootfs"]["python"]
    wheels = step("aarch64 wheels", lambda: _step_wheels(cache, pins, python), need["aarch64 wheels"])
    if wheels:
        state.update(wheels=wheels["wheels"], site=wheels["site"], wheels_key=_recipe_key(pins))
        _write_state(cache, state)
    env = Environment(cache / "root", cache / "site", qemu)
    say("check", "start")
    t0 = time.perf_counter()
    probe = _probe(env, pins)
    timings["check"] = round(time.perf_counter() - t0, 1)
    say("check", "done")
    for pkg, want in pins.items():
        got = probe.get(pkg)
        if want and got and got != want:
            raise EmulationError(f"the aarch64 {pkg} is {got}, the host's {want}; run: edgeintent devices setup {DEVICE} --force")
    libc = f"glibc-{GLIBC[0]}.{GLIBC[1]}"
    if probe.get("libc") != libc:
        raise EmulationError(f"the {SUITE} root has {probe.get('libc')}, not {libc}: its manylinux tags (PLATFORMS) would be wrong; "
                             f"run: edgeintent devices setup {DEVICE} --force")  # fmt: skip
    state.update(probe=probe, qemu=tools["qemu_version"], cpu=CPU)
    _write_state(cache, state)
    return {"device": DEVICE, "cache": str(cache), "built": [k for k, v in need.items() if v], "seconds": timings,
            "qemu": tools["qemu_version"], "cpu": CPU, "suite": SUITE, "runtimes": probe,
            "bytes": _du(cache)}  # fmt: skip


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def environment(cache: Path | None = None) -> Environment:
    """The built environment, or an EmulationError saying how to build it."""
    cache = Path(cache) if cache else cache_dir()
    state = _read_state(cache)
    how = f"run: edgeintent devices setup {DEVICE} (as root, about a minute, once; cached in {cache})"
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise EmulationError(f"{DEVICE} needs {QEMU}, which is not installed; {how}", "setup")
    if "probe" not in state or not (cache / "root" / PYTHON).exists() or not (cache / "site").is_dir():
        raise EmulationError(f"{DEVICE} is not set up; {how}", "setup")
    pins = wheel_pins()
    if state.get("wheels_key") != _recipe_key(pins):
        want = ", ".join(f"{k}=={v}" if v else k for k, v in pins.items())
        raise EmulationError(f"{DEVICE} was built for {', '.join(state.get('wheels', []))}; this host needs {want} "
                             f"(or a newer recipe); {how}", "setup")  # fmt: skip
    if not (cache / "root" / "proc" / "cpuinfo").exists():
        write_cpuinfo(cache / "root")
    return Environment(cache / "root", cache / "site", qemu, info=state)


# ---------------------------------------------------------------------------------------------
# running artifacts
# ---------------------------------------------------------------------------------------------


class WorkerRunner:
    """One artifact loaded in one long-lived ``arm_worker.py`` process; ``run`` sends a request.

    ``command`` starts a python (the emulated aarch64 one, or the host's in tests); the worker
    answers with its runtime and ``platform.machine()``, which become ``.runtime`` and ``.arch``.
    """

    def __init__(self, command: list[str], env: dict[str, str] | None, kind: str, path: Path, precision: str,
                 threads: int = 1, inputs: list[str] | None = None, outputs: list[str] | None = None,
                 label: str = "", timeout: float = 600) -> None:  # fmt: skip
        self._stderr = tempfile.TemporaryFile()
        self.timeout = timeout
        self.label = label or str(path)
        self.proc = subprocess.Popen([*command, str(Path(arm_worker.__file__).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env)  # fmt: skip
        hello = self._call({"op": "load", "kind": kind, "path": str(Path(path).resolve()), "precision": precision,
                            "threads": threads, "inputs": inputs or [], "outputs": outputs or []})[0]  # fmt: skip
        self.runtime = hello["runtime"]
        self.arch = hello["arch"]
        self.inputs = hello["inputs"]
        self.outputs = hello["outputs"]
        self.info = hello

    def _call(self, header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
        if self.proc.poll() is not None:
            raise self._died()
        try:
            arm_worker.write_frame(self.proc.stdin, header, payload)
            frame = arm_worker.read_frame(self.proc.stdout)
        except (BrokenPipeError, OSError, ValueError):
            frame = None
        if frame is None:
            self.proc.wait(timeout=30)
            raise self._died()
        if not frame[0].get("ok"):
            error = frame[0].get("error", "unknown error")
            kind, _, msg = error.partition(": ")
            if kind == ShapeRefused.__name__:  # the artifact's own refusal (fixed_shapes), not a failure
                raise ShapeRefused(f"{self.label}: {msg}")
            raise EmulationError(f"{self.label}: {error}")
        return frame

    def _died(self) -> EmulationError:
        code = self.proc.returncode
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        return EmulationError(f"{self.label}: the runner process died ({how}): {_last_line(err)}")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _, payload = self._call({"op": "run"}, arm_worker.pack({k: np.asarray(v) for k, v in feeds.items()}))
        return arm_worker.unpack(payload)

    def details(self) -> dict | None:
        """What the session in the worker says about itself (``info()``; LiteRT: delegate and op counts)."""
        return self._call({"op": "info"})[0]["info"]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                arm_worker.write_frame(self.proc.stdin, {"op": "close"})
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self._stderr):
            with contextlib.suppress(OSError):
                f.close()

    def __enter__(self) -> WorkerRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _worker(command: list[str], env: dict[str, str] | None, art: Artifact, threads: int, label: str) -> WorkerRunner:
    return WorkerRunner(command, env, art.runtime, Path(art.path), art.precision, threads, list(art.inputs),
                        list(art.outputs), label=label)  # fmt: skip


class ArmProvider:
    """Opens artifacts in the real aarch64 builds of their runtimes under emulation (one worker each)."""

    device = DEVICE
    #: the divergent-node trace replays ONNX on the host: meaningless for an ARM-only divergence
    diagnose = False

    def __init__(self, env: Environment | None = None) -> None:
        self.env = env

    def prepare(self) -> None:
        """Fail fast, before any work, when the device is not set up."""
        if self.env is None:
            self.env = environment()

    def supports(self, runtime: str) -> str | None:
        """Why ``runtime`` cannot run on cpu-arm, or None: not an aarch64 runtime here, or (once the
        environment is prepared) its wheel is not in the environment."""
        rt = RUNTIMES.get(runtime)
        if not rt.arm:
            return rt.not_on_arm
        probe = (self.env.info or {}).get("probe") if self.env is not None else None
        if probe is not None and rt.dist not in probe:
            return (f"the {DEVICE} environment has no {rt.dist} (it installs the aarch64 wheel only when the host has "
                    f"{rt.dist}: install it here, then run: edgeintent devices setup {DEVICE})")  # fmt: skip
        return None

    def open(self, art: Artifact, threads: int = 1) -> Session:
        self.prepare()
        env = self.env
        why = self.supports(art.runtime)
        if why:
            raise ConfigError(f"{art.path}: {why}")
        worker = _worker(env.command(), env.env(), art, threads, label=f"{DEVICE} {art.path}")
        qemu = (env.info or {}).get("qemu", QEMU).split(" (")[0]
        worker.runtime = f"{worker.runtime}, {qemu} -cpu {env.cpu}"
        return Session(worker, art, arch=worker.arch)

    def info(self) -> dict:
        self.prepare()
        env = self.env
        return {"qemu": (env.info or {}).get("qemu"), "cpu": env.cpu, "cache": str(env.root.parent),
                "note": "aarch64 runtimes under user-mode emulation: numerics are the ARM kernels', timings are not a phone's"}  # fmt: skip


def host_worker(art: Artifact, threads: int = 1) -> Session:
    """The same worker on the host python (tests: the protocol without emulation)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    worker = _worker([sys.executable], env, art, threads, label=art.path)
    return Session(worker, art, arch=worker.arch)
