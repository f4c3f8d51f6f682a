"""edgeintent: on-device intent inference — featurize, train, quantize, export, check, bench, decide."""

from __future__ import annotations

__version__ = "0.1.0"
