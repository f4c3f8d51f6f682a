"""Target ``kit``: the phone-side featurizer (C99) and its binary spec, written into the bundle.

``BUNDLE/exports/kit/kit/`` holds the library (``kit.h``, ``kit.c``), the conformance runner
(``kit_conform.c``), the fuzz driver (``kit_fuzz.c``), the bundle's FeatureSpec as ``spec.bin``, and
its raw golden events as ``cases.bin``. Nothing is compiled at export: ``edgeintent parity`` compiles
the runner with the host C compiler (or the aarch64 cross compiler on ``--device cpu-arm``), replays
``cases.bin`` and requires bit-identical ids, lengths and ages (:mod:`edgeintent.kit.conformance`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeintent.errors import KitError
from edgeintent.exporters import Target, register_target
from edgeintent.kit import C_DIR, FUZZER, LIBRARY, RUNNER
from edgeintent.kit.build import CFLAGS, command, compiler, machine, runtime_label
from edgeintent.kit.conformance import check_kit
from edgeintent.kit.spec import FORMAT, cases_bytes, spec_bytes
from edgeintent.toolkit.golden_events import GOLDEN_EVENTS, has_golden_events, load_golden_events


def kit_arch(device: str) -> str:
    """The kit architecture of a parity ``--device`` (host, or aarch64 for the emulated cpu-arm)."""
    return "host" if device == "host" else "aarch64"


@register_target("kit")
class KitTarget(Target):
    kind = "featurizer"
    extension = ""
    precisions = ("fp32",)
    dynamic_batch = False
    dynamic_length = False
    runtime = "C99 (host cc; aarch64 cross + qemu)"
    notes = "phone-side featurizer + decision rule in C; parity: bit-identical ids on raw golden events"

    def artifact_name(self, precision: str) -> str:
        return "kit"

    def run_missing(self) -> str | None:
        return self.why_not_on(None)

    def why_not_on(self, provider) -> str | None:
        arch = kit_arch(getattr(provider, "device", "host"))
        try:
            compiler(arch)
            command(Path("kit_conform"), arch)
        except KitError as exc:
            return str(exc)
        return None

    def export(self, model, spec, samples, out: Path, precision: str, bundle=None) -> dict:
        """The library and the spec; ``cases.bin`` too when the bundle holds raw golden events (bundles
        trained before edgeintent recorded them have none: their kit exports, but parity cannot check it)."""
        raw = load_golden_events(bundle) if has_golden_events(bundle) else None
        out.mkdir(parents=True)
        for name in (*LIBRARY, RUNNER, FUZZER):
            shutil.copyfile(C_DIR / name, out / name)
        (out / "spec.bin").write_bytes(spec_bytes(spec))
        if raw is not None:
            (out / "cases.bin").write_bytes(cases_bytes(raw))
        return {"spec_format": FORMAT, "cases": 0 if raw is None else int(len(raw["case"])), "cflags": " ".join(CFLAGS)}

    def unchecked(self, bundle) -> str | None:
        """Why parity cannot check this bundle's kit (no raw golden events), or None."""
        if has_golden_events(bundle):
            return None
        return f"the bundle has no {GOLDEN_EVENTS} (trained before edgeintent recorded raw golden events); retrain it to check the kit"

    def check(self, bundle, meta, device: str = "host") -> list[dict]:
        """Build the exported kit for ``device`` and compare its ids with Python's, one result per stream
        (``stream``, ``passed``, ``metrics``, ``reasons``, ``runtime``, ``arch``)."""
        arch = kit_arch(device)
        raw = load_golden_events(bundle)
        checks = check_kit(Path(bundle.path) / meta.artifact, raw, bundle.spec, arch)
        return [dict(c, runtime=runtime_label(arch), arch=machine(arch)) for c in checks]
