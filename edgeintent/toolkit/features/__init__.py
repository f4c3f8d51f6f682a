"""Features: events → per-event integer ids → padded windows and labels per decision point.

- :mod:`~edgeintent.toolkit.features.spec`: :class:`FeatureSpec` (what the phone needs), its configs and
  :func:`fit_spec`;
- :mod:`~edgeintent.toolkit.features.values`: what the featurizers read from an event (columns,
  categorical codes, derived numbers);
- :mod:`~edgeintent.toolkit.features.encoding`: :func:`event_ids`, the per-event id arithmetic;
- :mod:`~edgeintent.toolkit.features.windows`: decision points, windows and labels (:func:`build_samples`);
- :mod:`~edgeintent.toolkit.features.reference`: a row-by-row re-implementation the tests compare against;
- :mod:`~edgeintent.toolkit.features.request`: one request's window, as a phone featurizes it.
- :mod:`~edgeintent.toolkit.features.inspect`: a summary of a data source (``data inspect``).

This package face re-exports the names callers use.
"""

from __future__ import annotations

from edgeintent.toolkit.features.encoding import _cell_ids, _sector_ids, event_ids
from edgeintent.toolkit.features.spec import (
    FUNNEL,
    LABELS,
    N_FEATURES,
    UNK,
    FeatureSpec,
    FitConfig,
    LabelConfig,
    fit_spec,
    is_funnel,
)
from edgeintent.toolkit.features.windows import (
    Samples,
    build_samples,
    label_decisions,
    load_samples,
    save_samples,
    split_users,
)

__all__ = [
    "FUNNEL",
    "LABELS",
    "N_FEATURES",
    "UNK",
    "FeatureSpec",
    "FitConfig",
    "LabelConfig",
    "Samples",
    "build_samples",
    "event_ids",
    "fit_spec",
    "is_funnel",
    "label_decisions",
    "load_samples",
    "save_samples",
    "split_users",
    # the sector and cell arithmetic, which the tests check value by value
    "_cell_ids",
    "_sector_ids",
]
