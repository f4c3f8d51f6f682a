"""The kit's binary formats (all little-endian): ``spec.bin``, ``cases.bin`` and the runner's output.

``spec.bin`` is the FeatureSpec as the C kit loads it (``kit_open``), label-free::

    "EIKS"  u32 format (1)  u32 body bytes  u32 CRC-32 of the body (zlib's)
    body:   u32 FeatureSpec version  i64 utc_offset_ms  u32 n_streams
            per stream: u8 stream (0 gesture, 1 click, 2 cloud)  u32 max_len  u32 n_features
              per feature: u8 kind  u8 source  u32 cardinality  and by kind:
                vocab   u32 n, then per entry u8 type (0 string: u32 length + UTF-8; 1 integer: i64)
                bucket  u32 n, f64 edges[n]
                hash    u64 size  u64 seed
                sector  f64 min_distance
                cell, hour: nothing

Kinds and sources are numbered as in ``KINDS`` / ``SOURCES`` (and kit.c). ``cases.bin`` and the
output format are described in ``c/kit_conform.c``; :func:`cases_bytes` writes the one and
:func:`read_output` reads the other.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pyarrow as pa

from edgeintent.errors import ExportError, KitError
from edgeintent.toolkit.data.schema import STREAM_FIELDS, STREAMS
from edgeintent.toolkit.features import FeatureSpec
from edgeintent.toolkit.features.spec import STREAM_FEATURES
from edgeintent.toolkit.golden_events import event_field

FORMAT = 1
KINDS = {"vocab": 1, "bucket": 2, "hash": 3, "sector": 4, "cell": 5, "hour": 6}
SOURCES = {name: i + 1 for i, name in enumerate((
    "kind", "page", "orientation", "displacement", "distance", "duration_ms", "speed", "abs_vx", "abs_vy", "start",
    "end", "pressure", "size", "gap_ms", "widget", "action", "item_id", "category_id", "price", "ts_ms"))}  # fmt: skip
STREAM_IDS = {s: i for i, s in enumerate(STREAMS)}
INT32_MAX = 2**31 - 1


def spec_bytes(spec: FeatureSpec) -> bytes:
    """``spec.bin`` of a FeatureSpec (an ExportError if the kit cannot represent it)."""
    body = [struct.pack("<IqI", spec.version, spec.utc_offset_ms, len(spec.streams))]
    for s in spec.streams:
        feats = spec.features[s]
        body.append(struct.pack("<BII", STREAM_IDS[s], spec.max_len[s], len(feats)))
        for f in feats:
            if f.cardinality > INT32_MAX:
                raise ExportError(f"feature {s}.{f.name} has {f.cardinality} ids; the kit's int32 ids hold at most {INT32_MAX}")
            body.append(struct.pack("<BBI", KINDS[f.kind], SOURCES[f.source], f.cardinality))
            if f.kind == "vocab":
                body.append(struct.pack("<I", len(f.vocab)))
                for v in f.vocab:
                    if isinstance(v, str):
                        b = v.encode("utf-8")
                        body.append(struct.pack("<BI", 0, len(b)) + b)
                    elif -(2**63) <= v < 2**63:
                        body.append(struct.pack("<Bq", 1, v))
                    else:
                        raise ExportError(f"feature {s}.{f.name}: vocabulary value {v} does not fit the kit's int64")
            elif f.kind == "bucket":
                body.append(struct.pack(f"<I{len(f.edges)}d", len(f.edges), *f.edges))
            elif f.kind == "hash":
                body.append(struct.pack("<QQ", f.size, f.seed))
            elif f.kind == "sector":
                body.append(struct.pack("<d", f.min_distance))
    blob = b"".join(body)
    return b"EIKS" + struct.pack("<III", FORMAT, len(blob), zlib.crc32(blob)) + blob


def _string(v: str) -> bytes:
    b = v.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def cases_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``cases.bin``: the raw golden events of every case (see ``c/kit_conform.c``)."""
    n = len(arrays["case"])
    per: dict[str, list[list[bytes]]] = {}
    for s in STREAMS:
        events: list[list[bytes]] = [[] for _ in range(n)]
        if f"ev_{s}_case" in arrays:
            case, ts = arrays[f"ev_{s}_case"], arrays[f"ev_{s}_ts_ms"]
            fields = {name: event_field(arrays, s, name) for name in _FIELDS[s]}
            for i in range(len(case)):
                parts = [struct.pack("<q", int(ts[i]))]
                for name in _FIELDS[s]:
                    v, typ = fields[name][i], STREAM_FIELDS[s][name]
                    parts.append(_string(str(v)) if pa.types.is_string(typ)
                                 else struct.pack("<d" if pa.types.is_floating(typ) else "<q", v))  # fmt: skip
                events[int(case[i])].append(b"".join(parts))
        per[s] = events
    out = [b"EIKC", struct.pack("<II", 1, n)]
    for i in range(n):
        out.append(struct.pack("<q", int(arrays["t_ms"][i])))
        for s in STREAMS:
            out.append(struct.pack("<I", len(per[s][i])))
            out.extend(per[s][i])
    return b"".join(out)


#: the order of each stream's fields in cases.bin (the kit's event structs); types from STREAM_FIELDS
_FIELDS = {
    "gesture": ("kind", "page", "orientation", "x0", "y0", "x1", "y1", "duration_ms", "vx", "vy", "pressure", "size"),
    "click": ("widget", "page"),
    "cloud": ("action", "item_id", "category_id", "price"),
}


def read_output(data: bytes, where: str) -> dict[str, dict[str, np.ndarray]]:
    """A runner's output (or an app's ``--featurizer-dump``): stream → status, length, x, age arrays."""
    def broken(why: str) -> KitError:
        return KitError(f"{where}: not a featurizer dump ({why})")

    if len(data) < 16 or data[:4] != b"EIKO":
        raise broken("no EIKO header")
    version, n_cases, n_streams = struct.unpack_from("<III", data, 4)
    if version != 1:
        raise broken(f"version {version}, this edgeintent reads 1")
    if not 1 <= n_streams <= len(STREAMS) or len(data) < 16 + 9 * n_streams:
        raise broken(f"{n_streams} streams")
    shapes = []
    for i in range(n_streams):
        sid, max_len, nf = struct.unpack_from("<BII", data, 16 + 9 * i)
        if sid >= len(STREAMS) or not 1 <= max_len <= 100_000 or nf != len(STREAM_FEATURES[STREAMS[sid]]):
            raise broken(f"stream header {i} is (stream {sid}, max_len {max_len}, {nf} features)")
        shapes.append((STREAMS[sid], max_len, nf))
    record = np.dtype([field for s, ml, nf in shapes for field in
                       ((f"{s}_status", "<i4"), (f"{s}_length", "<i4"), (f"{s}_x", "<i4", (ml, nf)), (f"{s}_age", "<i8", (ml,)))])  # fmt: skip
    body = data[16 + 9 * n_streams :]
    if len(body) != n_cases * record.itemsize:
        raise broken(f"{len(body)} bytes of cases, {n_cases} cases need {n_cases * record.itemsize}")
    rec = np.frombuffer(body, dtype=record, count=n_cases)
    return {s: {k: np.array(rec[f"{s}_{k}"]) for k in ("status", "length", "x", "age")} for s, _, _ in shapes}
