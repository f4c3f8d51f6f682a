"""The tolerance table: what an exported artifact may differ from torch, per target × precision.

- fp32 artifacts are held to values (probabilities and logits), ranking (Spearman of logits, AUC
  delta) and decisions (no threshold decision may flip);
- fp16 rounds logits to about 1e-3, so it is judged on values first, with ranking bounds that
  tolerate that rounding;
- quantized artifacts are held to their quantize report (``edgeintent quantize`` measured them on the
  validation users), or to the generic quantized row without one: judged on ranking and decisions,
  since their values move by design;
- vector outputs (embeddings, L2-normalised) are held to ``emb_abs`` (max |Δ| of any component) and
  ``cosine_min`` (the lowest row cosine between exported and torch embeddings);
- a runtime whose kernels on one architecture differ by design has a row per (target, precision,
  arch) in ``ARCH_TOLERANCES``.

The figures behind each bound and the commands that measure them are in ``docs/parity.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Tolerance:
    prob_abs: float  # max |p_exported − p_torch|
    logit_abs: float  # max |logit_exported − logit_torch|
    spearman_min: float  # Spearman correlation of logits, at least
    auc_delta: float  # |AUC_exported − AUC_torch| on labelled recorded rows, at most
    flip_share: float  # share of threshold decisions that flip, at most
    emb_abs: float = 1e-5  # max |e_exported − e_torch| over the components of an embedding output
    cosine_min: float = 0.99999  # cosine of each exported embedding row with torch's, at least

    def as_dict(self) -> dict:
        return asdict(self)


#: (target, precision) → tolerance; "*" matches any target
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("*", "fp32"): Tolerance(prob_abs=1e-5, logit_abs=1e-4, spearman_min=0.9999, auc_delta=1e-4, flip_share=0.0),
    ("*", "fp16"): Tolerance(prob_abs=2e-3, logit_abs=2e-2, spearman_min=0.99, auc_delta=2e-3, flip_share=0.05,
                             emb_abs=5e-3, cosine_min=0.9995),
    ("torch", "fp32"): Tolerance(prob_abs=1e-5, logit_abs=1e-4, spearman_min=0.9999, auc_delta=1e-4, flip_share=0.0),
}

#: quantized artifacts (int8 weights or activations, palettized weights) without a quantize report:
#: judged on ranking and decisions; their values move by design
QUANTIZED = Tolerance(prob_abs=0.05, logit_abs=1.0, spearman_min=0.98, auc_delta=0.005, flip_share=0.05,
                      emb_abs=0.1, cosine_min=0.98)
TOLERANCES[("*", "quantized")] = QUANTIZED

#: (target, precision, arch) → tolerance, where a runtime's kernels on that architecture differ by design:
#: MNN's aarch64 fp32 kernels approximate sigmoid, tanh and exp, and recurrent cells apply them at every
#: step (docs/parity.md). Values get about twice the worst measured; ranking and decisions keep fp32's.
ARCH_TOLERANCES: dict[tuple[str, str, str], Tolerance] = {
    ("mnn", "fp32", "aarch64"): Tolerance(prob_abs=1e-4, logit_abs=5e-4, spearman_min=0.9999, auc_delta=1e-4, flip_share=0.0,
                                          emb_abs=1e-4, cosine_min=0.9999),
}


def tolerance(target: str, precision: str, quantize_report: dict | None = None, arch: str | None = None) -> Tolerance:
    """The row for ``target``/``precision`` (on ``arch`` when its kernels differ by design); a
    quantized artifact is held to its quantize report.

    The report (``edgeintent quantize``) measured the artifact on the validation users; parity on the
    golden set (other, fewer rows) allows twice the value differences, decision flips and AUC change
    the report measured (or twice the AUC budget it was accepted under), never less than the generic
    quantized row for flips and AUC, so an artifact that changed after it was accepted fails.
    """
    if arch is not None and (target, precision, arch) in ARCH_TOLERANCES:
        return ARCH_TOLERANCES[(target, precision, arch)]
    for key in ((target, precision), ("*", precision)):
        if key in TOLERANCES:
            return TOLERANCES[key]
    report = quantize_report
    if report:
        tasks = report["tasks"].values()
        scores = [t for t in tasks if "prob_max_abs" in t] or [{"prob_max_abs": 0.0, "logit_max_abs": 0.0}]
        vectors = [t for t in tasks if "emb_max_abs" in t]
        return Tolerance(
            prob_abs=max(2 * max(t["prob_max_abs"] for t in scores), 1e-3),
            logit_abs=max(2 * max(t["logit_max_abs"] for t in scores), 1e-2),
            spearman_min=QUANTIZED.spearman_min,
            # the golden set is a few hundred rows: its AUC moves more than the validation users' did
            auc_delta=max(2 * float(report["budget_auc"]), 2 * max(abs(t["auc_delta"] or 0.0) for t in tasks), QUANTIZED.auc_delta),
            # the golden set is small (a flip is ~0.1–1 % of it), so never tighter than the generic row
            flip_share=max(2 * max(t.get("flip_share") or 0.0 for t in tasks), QUANTIZED.flip_share),
            # embeddings: twice the measured component error (never tighter than fp16's row); the cosine, like
            # the flips, never tighter than the generic quantized row (the golden edge cases are not in the report)
            emb_abs=max([2 * t["emb_max_abs"] for t in vectors] + [TOLERANCES[("*", "fp16")].emb_abs]),
            cosine_min=min([1 - 2 * (1 - t["cosine_min"]) for t in vectors] + [QUANTIZED.cosine_min]),
        )
    return QUANTIZED


def table() -> list[dict]:
    rows = [{"target": t, "precision": p, "arch": "*", **tol.as_dict()} for (t, p), tol in TOLERANCES.items()]
    return rows + [{"target": t, "precision": p, "arch": a, **tol.as_dict()} for (t, p, a), tol in ARCH_TOLERANCES.items()]
