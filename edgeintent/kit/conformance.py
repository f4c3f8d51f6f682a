"""Bit-for-bit conformance of a phone-side featurizer with Python's ids on the raw golden events.

:func:`run_kit` compiles the kit exported into a bundle (host C compiler, or the aarch64 cross
compiler under qemu) and replays ``cases.bin`` through its conformance runner; :func:`compare` checks
any runner's output (the kit's, or an app's own port's ``--featurizer-dump``) against the ids, lengths
and ages :func:`~edgeintent.toolkit.features.build_samples` made of the same raw events. Every
difference is a breach; the first one of each stream is named by stream, row (case) and feature.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeintent.errors import KitError
from edgeintent.kit import RUNNER
from edgeintent.kit.build import compile_program, compiler, run
from edgeintent.kit.spec import read_output
from edgeintent.toolkit.features import FeatureSpec

STATUS = ("ok", "spec", "memory", "stream", "value", "order", "evicted", "arg")
#: events at or after t the runner's ring keeps (the raw golden cases hold at most a few)
SLACK = 16


def run_kit(kit_dir: Path, arch: str = "host", slack: int = SLACK) -> bytes:
    """Compile the runner in ``kit_dir`` for ``arch`` and return its output on ``kit_dir/cases.bin``.

    A compiler that is missing is a KitError; a kit that fails to compile or crashes is a KitError
    too, which the parity gate reports as a breach of the artifact."""
    compiler(arch)
    with tempfile.TemporaryDirectory(prefix="edgeintent-kit-") as tmp:
        exe = compile_program(kit_dir, RUNNER, Path(tmp) / "kit_conform", arch)
        out = Path(tmp) / "out.bin"
        run(exe, [str(kit_dir / "spec.bin"), str(kit_dir / "cases.bin"), str(out), str(slack)], arch)
        return out.read_bytes()


def run_decide(kit_dir: Path, rules: bytes, arch: str = "host") -> np.ndarray:
    """The kit's ``kit_decide`` choices (int32) on a rules file (format in ``c/kit_conform.c``)."""
    compiler(arch)
    with tempfile.TemporaryDirectory(prefix="edgeintent-kit-") as tmp:
        exe = compile_program(kit_dir, RUNNER, Path(tmp) / "kit_conform", arch)
        (Path(tmp) / "rules.bin").write_bytes(rules)
        run(exe, ["--decide", str(Path(tmp) / "rules.bin"), str(Path(tmp) / "choices.bin")], arch)
        return np.frombuffer((Path(tmp) / "choices.bin").read_bytes(), dtype="<i4").copy()


def _name(spec: FeatureSpec, stream: str, j: int) -> str:
    return f"feature {spec.features[stream][j].name!r} (column {j})"


def compare(expected: dict[str, np.ndarray], got: dict[str, dict[str, np.ndarray]], spec: FeatureSpec) -> list[dict]:
    """One result per stream: ``{"stream", "rows", "passed", "metrics", "reasons"}`` (reasons name the
    first differing row and feature of the stream)."""
    cases = expected["case"]
    n = len(cases)
    results = []
    for s in spec.streams:
        reasons: list[str] = []
        metrics = {"rows": n, "rows_differ": 0, "ids_differ": 0, "lengths_differ": 0, "ages_differ": 0, "errors": 0}
        if s not in got:
            results.append({"stream": s, "rows": n, "passed": False, "metrics": metrics,
                            "reasons": [f"stream {s}: the featurizer wrote no {s} windows"]})  # fmt: skip
            continue
        g = got[s]
        if len(g["length"]) != n or g["x"].shape[1:] != expected[f"x_{s}"].shape[1:]:
            results.append({"stream": s, "rows": n, "passed": False, "metrics": metrics,
                            "reasons": [f"stream {s}: {len(g['length'])} rows of shape {g['x'].shape[1:]}, "
                                        f"expected {n} of {expected[f'x_{s}'].shape[1:]}"]})  # fmt: skip
            continue
        want_x, want_len, want_age = expected[f"x_{s}"], expected[f"len_{s}"], expected[f"age_{s}"]
        err = g["status"] != 0
        bad_len = g["length"] != want_len
        bad_x = g["x"] != want_x
        bad_age = g["age"] != want_age
        bad_row = err | bad_len | bad_x.any(axis=(1, 2)) | bad_age.any(axis=1)
        metrics.update(rows_differ=int(bad_row.sum()), ids_differ=int(bad_x.sum()), lengths_differ=int(bad_len.sum()),
                       ages_differ=int(bad_age.sum()), errors=int(err.sum()))  # fmt: skip
        if bad_row.any():
            r = int(np.flatnonzero(bad_row)[0])
            where = f"stream {s}, row {r} (case {cases[r]})"
            if err[r]:
                code = int(g["status"][r])
                reasons.append(f"{where}: the featurizer returned error {STATUS[code] if 0 <= code < len(STATUS) else code}")
            elif bad_len[r]:
                reasons.append(f"{where}: length {int(g['length'][r])}, python {int(want_len[r])}")
            elif bad_x[r].any():
                slot, j = (int(v) for v in np.argwhere(bad_x[r])[0])
                reasons.append(f"{where}, {_name(spec, s, j)}, event {slot}: id {int(g['x'][r, slot, j])}, "
                               f"python {int(want_x[r, slot, j])}")  # fmt: skip
            else:
                slot = int(np.flatnonzero(bad_age[r])[0])
                reasons.append(f"{where}, event {slot}: age {int(g['age'][r, slot])} ms, python {int(want_age[r, slot])} ms")
            more = int(bad_row.sum()) - 1
            if more:
                reasons[-1] += f" (+{more} more rows differ)"
        results.append({"stream": s, "rows": n, "passed": not reasons, "metrics": metrics, "reasons": reasons})
    return results


def check_output(data: bytes, where: str, expected: dict[str, np.ndarray], spec: FeatureSpec) -> list[dict]:
    """:func:`compare` on a runner's output bytes (a malformed output is a KitError)."""
    return compare(expected, read_output(data, where), spec)


def check_kit(kit_dir: Path, expected: dict[str, np.ndarray], spec: FeatureSpec, arch: str = "host") -> list[dict]:
    """Build and run the kit in ``kit_dir``; a kit that does not build or crashes fails every stream."""
    compiler(arch)  # a missing compiler is the machine's problem, not the kit's: let it raise
    try:
        data = run_kit(kit_dir, arch)
    except KitError as exc:
        n = len(expected["case"])
        metrics = {"rows": n, "rows_differ": n, "ids_differ": 0, "lengths_differ": 0, "ages_differ": 0, "errors": n}
        return [{"stream": s, "rows": n, "passed": False, "metrics": dict(metrics), "reasons": [str(exc)]} for s in spec.streams]
    return check_output(data, f"{kit_dir}/kit_conform output", expected, spec)
