"""CoreML recipes: fp16 compute precision, and ``coremltools.optimize`` weight compression."""

from __future__ import annotations

from pathlib import Path

from edgeintent.quantization import register_recipe


def _coreml_base(model, bundle, precision: str = "fp32"):
    """The fp32 ML program to compress: the bundle's exported one when present (conversion is the
    slow step), else a fresh conversion of ``model``."""
    from edgeintent.exporters import exported_artifacts
    from edgeintent.exporters.coreml import _quiet_import, convert
    from edgeintent.toolkit.golden import golden_samples

    if precision == "fp32":
        for meta in exported_artifacts(bundle, ["coreml"]):
            if meta.precision == "fp32":
                return _quiet_import().models.MLModel(str(bundle.file(meta.artifact + "/Manifest.json").parent),
                                                      skip_model_load=True)  # fmt: skip
    return convert(model, bundle.spec, golden_samples(bundle.golden), precision)


def _save_mlmodel(mlmodel, out: Path) -> None:
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        mlmodel.save(str(out))


@register_recipe("coreml", "fp16", "compute precision fp16")
def _coreml_fp16(model, bundle, calib, out: Path) -> dict:
    _save_mlmodel(_coreml_base(model, bundle, "fp16"), out)
    return {"quantization": "compute_precision FLOAT16", "compute_precision": "fp16"}


def _coreml_compress(kind: str, nbits: int | None = None):
    def build(model, bundle, calib, out: Path) -> dict:
        import contextlib
        import io
        import warnings

        import coremltools.optimize.coreml as cto

        mlmodel = _coreml_base(model, bundle, "fp32")
        if kind == "linear":
            op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
            fn = cto.linear_quantize_weights
        else:
            op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, weight_threshold=0)
            fn = cto.palettize_weights
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            compressed = fn(mlmodel, cto.OptimizationConfig(global_config=op))
        _save_mlmodel(compressed, out)
        what = "linear int8 weights" if kind == "linear" else f"{nbits}-bit k-means palettized weights"
        return {"quantization": f"coremltools.optimize: {what}, weight_threshold=0", "compute_precision": "fp32"}

    return build


register_recipe("coreml", "weight-int8", "linear int8 weights (coremltools.optimize)")(_coreml_compress("linear"))
register_recipe("coreml", "palettize-6", "6-bit k-means palettized weights")(_coreml_compress("palettize", 6))
register_recipe("coreml", "palettize-4", "4-bit k-means palettized weights")(_coreml_compress("palettize", 4))
