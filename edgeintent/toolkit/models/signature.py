"""The exported signature a model declares: its inputs (names, dtypes, dynamic dims) and outputs.

Every exportable model has a ``signature()`` method returning a :class:`Signature`, in the spirit of
Optimum's per-model ``OnnxConfig``: exporters, parity, quantization and bench read it and never guess.
The signature is the same on every target, so a phone app can switch runtimes:

- inputs, in ``signature().inputs`` order: per stream ``s`` the event ids ``s`` (B, T_s, F_s) int64,
  the real lengths ``s_len`` (B,) int64, the event ages ``s_age`` (B, T_s) float32 log1p(seconds) when
  the model reads them; ``coupon`` (B,) float32 when it reads the offer; model-specific extras such as
  the ``rnn`` baseline's time-merge order ``merge_idx`` (B, ΣT_s) int64 and ``merge_len`` (B,) int64.
  B and every T_s are dynamic and independent (right padding; a row's padding never changes its outputs).
- outputs: ``prob_<task>`` (B,) for every task, then ``logit_<task>`` (B,) for every task. Logits are
  exported too: probabilities saturate, and ranking metrics need the logits. A model may also output
  vectors, listed in ``embeddings`` (e.g. ``find``'s ``embedding`` (B, D), L2-normalised): parity and
  quantization compare those row by row (max |Δ| and cosine) instead of as scores.

This module imports neither torch nor any runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeintent.errors import ExportError


@dataclass(frozen=True)
class InputSpec:
    """One graph input: ``dims`` holds ints for fixed sizes and names for dynamic ones."""

    name: str
    dtype: str  # "int64" | "float32"
    dims: tuple[int | str, ...]

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    #: the outputs that are (B, D) vectors (embeddings) rather than (B,) scores; each is also in ``outputs``
    embeddings: tuple[str, ...] = ()

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]


def stream_inputs(streams: tuple[str, ...], features: dict[str, int], ages: bool) -> list[InputSpec]:
    """Per stream: ids (B, T_s, F_s), lengths (B,) and, with ``ages``, event ages (B, T_s)."""
    out = []
    for s in streams:
        out.append(InputSpec(s, "int64", ("batch", f"T_{s}", int(features[s]))))
        out.append(InputSpec(f"{s}_len", "int64", ("batch",)))
        if ages:
            out.append(InputSpec(f"{s}_age", "float32", ("batch", f"T_{s}")))
    return out


COUPON = InputSpec("coupon", "float32", ("batch",))
MERGE = (InputSpec("merge_idx", "int64", ("batch", "T_merged")), InputSpec("merge_len", "int64", ("batch",)))


def task_outputs(tasks: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"prob_{t}" for t in tasks) + tuple(f"logit_{t}" for t in tasks)


def signature_of(model) -> Signature:
    """The model's declared signature; a one-line ``ExportError`` for a model that declares none (gbdt)."""
    declare = getattr(model, "signature", None)
    if declare is None:
        name = getattr(model, "registry_name", type(model).__name__)
        raise ExportError(f"{name} is not a torch model with an exportable signature; only torch models export (not gbdt)")
    return declare()


class DeclaresSignature:
    """Mixin for torch models: ``input_names()`` and ``output_names()`` follow the declared signature."""

    def signature(self) -> Signature:  # pragma: no cover - interface
        raise NotImplementedError

    def input_names(self) -> list[str]:
        """The batch keys ``forward`` reads, in the order exporters use."""
        return self.signature().input_names

    def output_names(self) -> list[str]:
        return list(self.signature().outputs)

    def embedding_names(self) -> list[str]:
        """The outputs that are (B, D) vectors (see :class:`Signature`)."""
        return list(self.signature().embeddings)


def embedding_names(model) -> list[str]:
    """The vector outputs of ``model`` (none for a model without a declared signature)."""
    declare = getattr(model, "signature", None)
    return [] if declare is None else list(declare().embeddings)
