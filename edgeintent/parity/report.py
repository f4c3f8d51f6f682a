"""Parity reports: a rich table, JSON (the report dict itself) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2e}" if v < 0.01 or v == float("inf") else f"{v:.4f}"
    return str(v)


def table(report: dict):
    from rich.table import Table

    t = Table(title=f"parity: {report['model']} ({report['golden_rows']} golden rows × {len(report['variants'])} input variants)")
    for col in ("target", "prec", "output", "runtime", "prob |Δ| (emb)", "logit |Δ| (cos)", "Spearman", "AUC Δ", "flips", "status"):
        t.add_column(col, justify="right" if "Δ" in col or col in ("Spearman", "flips") else "left")
    for r in report["results"]:
        m = r["metrics"]
        status = "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]"
        flips = "n/a" if m["flip_share"] is None else f"{m['flip_share']:.1%}"
        if "ids_differ" in m:  # a featurizer (the phone kit): rows whose ids, length or ages differ
            flips = f"{m.get('rows_differ', m['rows'])}/{m['rows']} rows"
        value, second = m["prob_max_abs"], m["logit_max_abs"]
        if "emb_max_abs" in m:  # a vector output: max |Δ| of its components, then the lowest row cosine
            value, second = m["emb_max_abs"], f"cos {m['cosine_min']:.6f}"
        t.add_row(r["target"], r["precision"], r["output"], short_runtime(r), _fmt(value),
                  _fmt(second), _fmt(m["spearman"]), _fmt(m["auc_delta"]), flips, status)  # fmt: skip
    t.caption = "MIL ref = MIL reference (graph semantics, not Apple kernels); runtimes ran on " + ", ".join(
        sorted({r["arch"] for r in report["results"]})
    )
    return t


def short_runtime(result: dict) -> str:
    rt = result["runtime"]
    return "MIL ref" if rt.startswith("MIL reference") else rt.split(",")[0]


def failures(report: dict) -> list[str]:
    """One line per failing target × output, naming the first divergent ONNX node when known."""
    lines = []
    for r in report["results"]:
        if r["passed"]:
            continue
        line = f"FAIL {r['target']} {r['precision']} {r['output']}: {r['reasons'][0]}"
        if len(r["reasons"]) > 1:
            line += f" (+{len(r['reasons']) - 1} more)"
        node = r.get("first_divergent_node")
        if node and node.get("node"):
            line += f"; first divergent node: {node['node']} ({node['op']})"
        elif node:
            line += f"; first divergent node: unknown ({node.get('why')})"
        lines.append(line)
    return lines


def junit_xml(report: dict) -> bytes:
    """One test case per target × precision × output; a breach is a <failure>."""
    results = report["results"]
    fails = sum(not r["passed"] for r in results)
    suite = ET.Element("testsuite", name=f"edgeintent.parity.{report['model']}", tests=str(len(results)),
                       failures=str(fails), errors="0", skipped="0")  # fmt: skip
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"parity.{r['target']}.{r['precision']}", name=r["output"], time="0")
        props = ET.SubElement(case, "properties")
        for k, v in list(r["metrics"].items()) + [("runtime", r["runtime"]), ("arch", r["arch"])]:
            ET.SubElement(props, "property", name=str(k), value=_fmt(v) if not isinstance(v, str) else v)
        if not r["passed"]:
            fail = ET.SubElement(case, "failure", message=r["reasons"][0], type="ParityBreach")
            fail.text = "\n".join(r["reasons"])
    root = ET.Element("testsuites", tests=str(len(results)), failures=str(fails))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)

