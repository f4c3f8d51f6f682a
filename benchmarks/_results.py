"""The benchmarks' common output: JSON on stdout (``--json``) and, with ``--write-results``, a results file.

``--write-results`` writes ``docs/results/<name>.json`` (the benchmark's JSON under ``"result"``) and
``docs/results/<name>.md`` (a Markdown table of it), both stamped with the command that made them, the
commit, the date, the machine and the versions of the libraries that matter. The docs include the
``.md`` files (``--8<--`` snippets) instead of quoting figures by hand; ``make docs-results`` re-runs every
benchmark that writes one. Both files are written to a temp file and renamed. ``python benchmarks/_results.py``
writes every ``.md`` again from its ``.json`` (after a change to the rendering).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from edgeintent.io import atomic_write_text, json_default

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
PACKAGES = ("edgeintent", "torch", "numpy", "onnxruntime", "MNN", "coremltools", "scikit-learn", "ray")


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--write-results", nargs="?", const=str(RESULTS), default=None, metavar="DIR",
                    help=f"also write NAME.json and NAME.md (a Markdown table) to DIR (default {RESULTS.relative_to(ROOT)})")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


def stamp(argv: list[str]) -> dict:
    """Where and how a result was made."""
    args, skip = [], False
    for a in argv:  # the command without --write-results [DIR]
        if skip and not a.startswith("-"):
            skip = False
            continue
        skip = a == "--write-results"
        if not skip and not a.startswith("--write-results="):
            args.append(a)
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return {
        "command": "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT), *args]),
        "commit": _commit(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
                    "python": platform.python_version(),
                    # other work on the machine when the result was written: read absolute times with it
                    "load_average_1min": round(os.getloadavg()[0], 2), "nice": os.nice(0)},
        "versions": versions,
    }


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    if isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list)) for x in v):
        return ", ".join(_cell(x) for x in v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=json_default)[:80]
    return str(v).replace("|", "\\|")


def _flat(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _rows_table(rows: list[dict]) -> list[str]:
    flat = [_flat(r) for r in rows]
    cols: list[str] = []
    for r in flat:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in flat]
    return lines


def markdown(result) -> str:
    """A generic rendering: every list of records becomes a table, every other value a row of a key/value table."""
    lines: list[str] = []
    scalars: dict = {}

    def walk(obj, path: str) -> None:
        if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
            lines.extend(["", f"**{path or 'rows'}**", "", *_rows_table(obj)])
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}" if path else str(k))
        else:
            scalars[path or "value"] = obj

    walk(result, "")
    head = ["| figure | value |", "|---|---|", *[f"| {k} | {_cell(v)} |" for k, v in scalars.items()]] if scalars else []
    return "\n".join(head + lines)


def render(record: dict, table=None) -> str:
    s = record["stamp"]
    script = s["command"].split()[1]
    versions = ", ".join(f"{k} {v}" for k, v in s["versions"].items())
    m = s["machine"]
    body = table(record["result"]) if table is not None else markdown(record["result"])
    return (f"<!-- written by {script} --write-results; do not edit -->\n\n"
            f"{body}\n\n"
            f"*`{s['command']}` at {s['commit']}, {s['date']}; {m['cpu']} ({m['cores']} cores, {m['arch']}, "
            f"load average {m.get('load_average_1min', '?')} at the end), Python {m['python']}; {versions}.*\n")


def emit(name: str, result, args: argparse.Namespace, *, table=None) -> None:
    """Print ``result`` as JSON if asked, and write the results files if asked. ``table(result) -> str``
    replaces the generic Markdown rendering; a benchmark names it ``table`` at module level, where
    :func:`rerender` finds it again."""
    if args.json:
        print(json.dumps(result, indent=1, default=json_default))
    if args.write_results:
        record = {"stamp": stamp(sys.argv[1:]), "result": result}
        folder = Path(args.write_results)
        folder.mkdir(parents=True, exist_ok=True)
        text = render(record, table)
        atomic_write_text(folder / f"{name}.json", json.dumps(record, indent=1, default=json_default) + "\n")
        atomic_write_text(folder / f"{name}.md", text)
        print(f"wrote {folder / name}.json and .md", file=sys.stderr)


def rerender(folder: Path = RESULTS) -> list[Path]:
    """Write every NAME.md again from its NAME.json (after a change to the rendering, not to the figures),
    with the benchmark's own ``table`` function when it has one."""
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    written = []
    for js in sorted(Path(folder).glob("*.json")):
        record = json.loads(js.read_text())
        module = importlib.import_module(Path(record["stamp"]["command"].split()[1]).stem)
        atomic_write_text(js.with_suffix(".md"), render(record, getattr(module, "table", None)))
        written.append(js.with_suffix(".md"))
    return written


if __name__ == "__main__":
    for path in rerender():
        print(f"wrote {path}")
