"""The front door: README and docs/ read as a guide, build as a site, and show only commands that exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from edgeintent.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "devices.md", *sorted(DOCS.glob("*.md"))]
#: phrases that speak of development history rather than of the software as it is
HISTORY = ("bar is not met", "bar is met", "in git history", "earlier run", "before the change", "re-measured",
           "the earlier table", "timed before", "was measured before", "the first version")  # fmt: skip


def _commands(path: Path) -> list[tuple[int, list[str]]]:
    """``$ edgeintent …`` (or bare ``edgeintent …``) lines inside fenced code blocks: (line number, argv after
    ``edgeintent``); a line continued with a backslash is joined with the next."""
    out, fenced = [], False
    lines = path.read_text(encoding="utf-8").splitlines()
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("```"):
            fenced = not fenced
            continue
        s = s[2:] if s.startswith("$ ") else s
        if fenced and s.startswith("edgeintent "):
            k = no
            while s.endswith("\\") and k < len(lines):
                s = s[:-1] + " " + lines[k].strip()
                k += 1
            argv = shlex.split(s, comments=True)[1:]
            cut = [i for i, a in enumerate(argv) if a in ("|", "&&", ";", ">", "2>&1")]
            out.append((no, argv[: cut[0]] if cut else argv))
    return out


def test_readme_is_a_short_guide():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for heading in ("## Two commands", "## Quickstart", "## Targets", "## Models", "## Documentation"):
        assert heading in text, heading
    assert "make demo" in text and "make test" in text


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_exists_with_its_options(page):
    for no, argv in _commands(page):
        cmd: click.Command = main
        path = []
        args = list(argv)
        while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
            name = args.pop(0)
            sub = cmd.get_command(click.Context(cmd), name)
            assert sub is not None, f"{page.name}:{no}: `edgeintent {' '.join(path + [name])}` is not a command"
            path.append(name)
            cmd = sub
        res = CliRunner().invoke(main, [*path, "--help"])
        assert res.exit_code == 0, f"{page.name}:{no}: `edgeintent {' '.join(path)} --help` failed: {res.output}"
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for a in args:
            if a.startswith("--"):
                assert a.split("=")[0] in known, f"{page.name}:{no}: `edgeintent {' '.join(path)}` has no option {a}"


def test_the_pages_show_commands():
    assert sum(len(_commands(p)) for p in PAGES) >= 40


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_describe_the_software_not_its_history(page):
    text = page.read_text(encoding="utf-8").lower()
    found = [h for h in HISTORY if h in text]
    assert not found, f"{page.name}: {found}"


def test_every_results_table_is_written_by_a_benchmark_and_shown():
    shown = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    tables = sorted((DOCS / "results").glob("*.md"))
    assert tables, "docs/results/ holds no benchmark results"
    for md in tables:
        record = json.loads(md.with_suffix(".json").read_text())
        script = record["stamp"]["command"].split()[1]
        assert (ROOT / script).is_file() and script.startswith("benchmarks/"), script
        assert md.read_text().startswith(f"<!-- written by {script} --write-results"), md.name
        assert f'--8<-- "results/{md.name}"' in shown, f"{md.name} is not included by any page"


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    """mkdocs --strict: broken internal links and anchors, missing snippets, pages left out of the nav and
    unknown generated tables all fail the build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tmp_path / "site" / "parity" / "index.html").read_text()
    assert "<!-- generated" not in html and "spearman_min" in html  # the tolerance table came from the code
