"""The bench report as a rich table and summary lines (the CLI and the demo print them)."""

from __future__ import annotations


def _ms(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _short(runtime: str) -> str:
    return "MIL ref" if runtime.startswith("mil") else runtime.split(" ")[0]


def versions(r: dict) -> str:
    return ", ".join(sorted({row["runtime"] for row in r["rows"] if "measured" in row}))


#: the columns of the default table (fits 80 columns); ``wide=True`` shows every column
COMPACT = ("target", "prec", "status", "size", "p50", "p99", "peak RSS", "request\nmeasured", "featurizer\nshare")


def bench_table(r: dict, wide: bool = False):
    """The bench report as a rich table: the compact columns by default, all of them with ``wide``."""
    from rich.table import Table

    dev = r["device"]["name"]
    t = Table(title=f"bench: {r['model']} on {dev} — measured on host under {dev} limits ({r['limits']['label']}); "
                    f"projected on {dev} = host × {r['projection']['factor']:.2f}",
              caption=f"request: {', '.join(f'{s} {n}' for s, n in r['request']['window_events'].items())} events; "
                      f"featurizer p50 {_ms(r['featurizer']['p50_ms'])} ms measured / "
                      f"{_ms(r['featurizer']['projected']['p50_ms'])} ms projected on {dev}; " + _kit_caption(r) +
                      f"latencies in ms over {r['runs']} runs; "
                      "request = featurizer p50 + model p50; not timed = CoreML runs here only in the MIL reference "
                      "(functional, not a phone runtime); " + ("" if wide else "--wide for every column; ") +
                      versions(r))  # fmt: skip
    cols = ["target", "prec", "runtime", "status", "size", "init", "first", "p50", "p90", "p99", "mean", "peak RSS",
            f"p50\nprojected\non {dev}", "request\nmeasured", f"request\nprojected\non {dev}", "featurizer\nshare", "vs\ntorch"]  # fmt: skip
    shown = cols if wide else [c for c in cols if c in COMPACT]
    for c in shown:
        left = c in ("target", "prec", "runtime", "status")
        t.add_column(c, justify="left" if left else "right", no_wrap=c != "status", min_width=10 if c == "status" else None)
    for row in r["rows"]:
        st = row["status"]
        status = "\n".join(x for x in (
            "exported" if st["exported"] else "reference",
            {"ok": "parity ok", "FAIL": "[red]parity FAIL[/red]", "reference": "", "not run": "no parity"}[st["parity"]],
            "benched" if st["benched"] is True else "[yellow]not timed[/yellow]",
        ) if x and (wide or x not in ("exported", "benched")))  # fmt: skip
        size = "–" if row["artifact_bytes"] is None else f"{row['artifact_bytes'] / 1024:.0f} KB"
        values = [row["target"], row["precision"], _short(row["runtime"]), status, size]
        if "measured" not in row:
            values += ["–"] * 12
        else:
            m, p = row["measured"], row["projected"]
            vs = row.get("speedup_vs_torch_eager")
            values += [_ms(m["init_ms"]), _ms(m["first_ms"]), _ms(m["p50_ms"]), _ms(m["p90_ms"]), _ms(m["p99_ms"]),
                       _ms(m["mean_ms"]), f"{row['peak_rss_bytes'] / 2**20:.0f} MB", _ms(p["p50_ms"]),
                       _ms(row["request_ms"]["measured"]), _ms(row["request_ms"]["projected"]), _share(row),
                       "–" if vs is None or row["reference"] else f"{vs:.1f}x"]  # fmt: skip
        by_col = dict(zip(cols, values))
        t.add_row(*(by_col[c] for c in shown))
    return t


def _share(row: dict) -> str:
    """The featurizer's share of the request: Python's, and under it the C kit's."""
    kit = row.get("featurizer_share_kit")
    return f"{row['featurizer_share']['measured']:.0%}" + ("" if kit is None else f"\nkit {kit['measured']:.1%}")


def _kit_caption(r: dict) -> str:
    kit = r.get("featurizer_kit") or {}
    if "p50_ms" not in kit:
        return f"C kit: not measured ({kit.get('why', 'no kit row')}); "
    same = "same ids as Python" if kit["matches_python"] else "[red]ids differ from Python[/red]"
    return f"C kit featurizer p50 {kit['p50_ms'] * 1000:.1f} µs measured ({same}); "


def summary_lines(r: dict) -> list[str]:
    out = []
    say = out.append
    s = r["summary"]
    if s["default_vs_fastest_p50"] is not None:
        say(f"default runtime for {r['device']['name']}: {s['default_artifact']} — {s['default_vs_fastest_p50']:.2f}x the "
            f"fastest ({s['fastest']}), {s['default_speedup_vs_torch_eager']:.1f}x faster than torch eager (measured on host)")
    else:
        say(f"default runtime for {r['device']['name']} ({s['default_target']}) is not timed on this host; fastest: {s['fastest']}")
    for row in r["rows"]:
        if "deterministic" in row:
            d = row["deterministic"]
            say(f"{row['target']} {row['precision']}: {d['instructions_per_inference']:,.0f} instructions per inference "
                f"(callgrind, {d['runs']} runs)")
    return out
