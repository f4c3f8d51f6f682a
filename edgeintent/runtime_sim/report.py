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
    from rich import box
    from rich.table import Table

    dev = r["device"]["name"]
    t = Table(title=f"bench: {r['model']} on {dev} — measured on host under {dev} limits ({r['limits']['label']}); "
                    f"projected on {dev} = host CPU time × {r['projection']['factor']:.2f} "
                    f"({r['projection']['precision']}{_range(r['projection'])})",
              caption=f"request: {', '.join(f'{s} {n}' for s, n in r['request']['window_events'].items())} events; "
                      f"featurizer p50 {_ms(r['featurizer']['p50_ms'])} ms measured / "
                      f"{_ms(r['featurizer']['projected']['p50_ms'])} ms projected on {dev}; " + _kit_caption(r) +
                      f"latencies in ms over {r['runs']} runs; "
                      "request = featurizer p50 + model p50; not timed = CoreML runs here only in the MIL reference "
                      "(functional, not a phone runtime); " + ("" if wide else "--wide for every column; ") +
                      versions(r),
              box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD, pad_edge=wide, show_edge=wide,
              padding=(0, 1) if wide else (0, 1, 0, 0))  # fmt: skip
    cols = ["target", "prec", "runtime", "status", "size", "init", "first", "p50", "p90", "p99", "mean", "peak RSS",
            f"p50\nprojected\non {dev}", "request\nmeasured", f"request\nprojected\non {dev}", "featurizer\nshare", "vs\ntorch", "runtime details"]  # fmt: skip
    shown = cols if wide else [c for c in cols if c in COMPACT]
    for c in shown:
        left = c in ("target", "prec", "runtime", "status")
        header = c if wide else {"peak RSS": "peak\nRSS", "featurizer\nshare": "featur.\nshare"}.get(c, c)
        t.add_column(header, justify="left" if left else "right", no_wrap=c != "status",
                     min_width=(10 if wide else 9) if c == "status" else None)
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
            values += ["–"] * 13
        else:
            m, p = row["measured"], row["projected"]
            vs = row.get("speedup_vs_torch_eager")
            values += [_ms(m["init_ms"]), _ms(m["first_ms"]), _ms(m["p50_ms"]), _ms(m["p90_ms"]), _ms(m["p99_ms"]),
                       _ms(m["mean_ms"]), f"{row['peak_rss_bytes'] / 2**20:.0f} MB", _ms(p["p50_ms"]),
                       _ms(row["request_ms"]["measured"]), _ms(row["request_ms"]["projected"]), _share(row),
                       "–" if vs is None or row["reference"] else f"{vs:.1f}x", details_text(row.get("runtime_details"), row.get("runtime_info"))]  # fmt: skip
        by_col = dict(zip(cols, values))
        t.add_row(*(by_col[c] for c in shown))
    return t


def details_text(details: dict | None, info: dict | None = None) -> str:
    """What a runtime says of its artifact, in a few words: its profile (``Runtime.details``, run in the
    profiling process: planned memory, the operators that took the most time) and its facts about the
    loaded session (``Session.info()``, read after the first run: LiteRT's delegate and op count)."""
    parts = []
    d = details or {}
    if "planned_memory_bytes" in d:
        parts.append(f"planned {d['planned_memory_bytes'] / 1024:.0f} KB")
    prof = d.get("op_profile") or {}
    if prof.get("top_ops"):
        parts.append("top ops: " + ", ".join(f"{o['op']} {o['share']:.0%}" for o in prof["top_ops"][:3]))
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in (info or {}).items() if isinstance(v, (str, int, float))]
    return "\n".join(parts) or "–"


def _range(proj: dict) -> str:
    rng = proj["uncertainty"]["check_ratio_range"]
    return ", not calibrated" if rng is None else f", phone p50 within p50 ÷ {rng[1]:.2f} … p50 ÷ {rng[0]:.2f}"


def projection_line(r: dict) -> str:
    """What the projection assumed: host, speed, precision, uncertainty."""
    p, h = r["projection"], r["host"]
    busy = "" if not h.get("busy") or h["busy"] < 1.2 else f"; host busy (wall {h['busy']:.1f}x CPU time: projections use CPU time)"
    rng = p["uncertainty"]["check_ratio_range"]
    unc = ("not calibrated on published rows (derived, devices.md)" if rng is None
           else f"projected / published {rng[0]:.2f}–{rng[1]:.2f} on held-out fp32 rows")  # fmt: skip
    return (f"projection to {r['device']['name']}: {p['precision']} arithmetic, speed {p['speed']:.3f} of this host "
            f"({h['cpu']} @ {h['mhz'] or 0:.0f} MHz, {h['simd']}, calibration block {h['calib_ms']:.2f} ms vs "
            f"{p['device_calib_ms'] if p['device_calib_ms'] is not None else h['calib_ms']} ms on the device); {unc}{busy}")


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
    say(projection_line(r))
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
