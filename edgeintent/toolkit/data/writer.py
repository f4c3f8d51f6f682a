"""Writing event logs to long-format files (CSV, Parquet, JSONL), atomically.

:class:`EventWriter` appends logs to a temp file next to the target and renames it into place when it
closes cleanly; on an error the temp file is removed and any previous file is left as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from edgeintent.io import default_mode, ensure_parent
from edgeintent.toolkit.data.readers import detect_format
from edgeintent.toolkit.data.schema import LONG_SCHEMA, EventLog

class EventWriter:
    """Append logs to a long-format file; the file appears only when the writer closes cleanly."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fmt = detect_format(self.path)
        ensure_parent(self.path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent or ".")
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer = None
        self._fh = None
        self.rows = 0

    def write(self, log: EventLog) -> None:
        table = log.to_long_table()
        self.rows += table.num_rows
        if self.fmt == "parquet":
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.tmp, LONG_SCHEMA, compression="zstd")
            self._writer.write_table(table, row_group_size=1 << 18)
        elif self.fmt == "csv":
            if self._writer is None:
                self._writer = pacsv.CSVWriter(self.tmp, LONG_SCHEMA)
            self._writer.write_table(table)
        else:
            if self._fh is None:
                self._fh = open(self.tmp, "w", encoding="utf-8")
            for batch in table.to_batches(max_chunksize=1 << 16):
                for row in batch.to_pylist():
                    self._fh.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self.fmt == "csv" and self.rows == 0:
            pacsv.write_csv(LONG_SCHEMA.empty_table(), self.tmp)
        if self._fh is not None:
            self._fh.close()
        os.chmod(self.tmp, default_mode())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_events(log: EventLog, path: str | Path) -> Path:
    """Write one log to ``path`` (format from the suffix), atomically."""
    with EventWriter(path) as w:
        w.write(log)
    return Path(path)
