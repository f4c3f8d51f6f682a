"""MkDocs hook: tables generated from the code, so the docs cannot drift from it.

A page writes ``<!-- generated: NAME -->`` on a line of its own; the build replaces it with the table
``NAME`` below. Unknown names fail the build.
"""

from __future__ import annotations

import re


def _table(rows: list[dict], cols: list[str]) -> str:
    def cell(v) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (list, tuple)):
            return ", ".join(map(str, v)) or "–"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v if v not in (None, "") else "–").replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows])


def tolerances() -> str:
    from edgeintent.parity.policy import table

    rows = table()
    cols = ["target", "precision", "arch"] + [c for c in rows[0] if c not in ("target", "precision", "arch")]
    return _table(rows, cols)


def targets() -> str:
    from edgeintent.quantization.capabilities import capability_table

    rows = capability_table()
    return _table(rows, [c for c in rows[0] if c not in ("runs_here", "exports_here", "why_not")])


def devices() -> str:
    from edgeintent.runtime_sim.devices import DEVICES

    rows = [DEVICES.get(n).as_dict() for n in DEVICES.names()]
    keep = ["name", "core", "threads", "memory_mb", "runtime", "speed_vs_host", "bandwidth_vs_host"]
    return _table(rows, [c for c in keep if c in rows[0]])


def models() -> str:
    from edgeintent.toolkit.models import MODELS

    rows = [{"model": n, "kind": MODELS.get(n).kind, "tasks": MODELS.get(n).tasks,
             "what it is": MODELS.get(n).description} for n in MODELS.names()]
    return _table(rows, ["model", "kind", "tasks", "what it is"])


TABLES = {"tolerances": tolerances, "targets": targets, "devices": devices, "models": models}
MARKER = re.compile(r"^<!-- generated: ([a-z_-]+) -->$", re.M)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in TABLES:
            raise ValueError(f"{page.file.src_path}: no generated table {name!r} (choices: {', '.join(TABLES)})")
        return TABLES[name]()

    return MARKER.sub(sub, markdown)
