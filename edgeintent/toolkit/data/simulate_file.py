"""``data simulate``'s work: stream the simulator into an events file and its decision points into the sidecar.

Memory stays bounded: the simulator yields blocks of users, and each block is appended to both files.
Either both files are written completely or neither is left behind.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from edgeintent.toolkit.data.sources import sidecar_path
from edgeintent.toolkit.data.writer import EventWriter


def simulate_to_file(users: int, seed: int, out: Path, progress: bool = False) -> dict:
    """Stream the simulator into ``out`` and its decision points into the sidecar, block by block.

    Returns the summary ``data simulate --json`` prints: both file names, event and decision-point
    counts, users and seed. ``progress`` shows a (transient) progress bar.
    """
    from rich.progress import Progress

    from edgeintent.toolkit.data.simulator import SimConfig, iter_simulate

    out = Path(out)
    cfg = SimConfig(users=users, seed=seed)
    side = sidecar_path(out)
    n_events = n_dec = 0
    writer = EventWriter(out)
    dec_tmp = side.with_name(f".{side.name}.tmp")
    dec_writer = None
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("simulating", total=users)
            for block in iter_simulate(cfg):
                writer.write(block.events)
                if dec_writer is None:
                    dec_writer = pq.ParquetWriter(dec_tmp, block.decisions.schema, compression="zstd")
                dec_writer.write_table(block.decisions)
                n_events += block.events.n_events
                n_dec += block.decisions.num_rows
                bar.update(task, completed=int(block.decisions.column("user_id").to_numpy().max(initial=0)))
        if dec_writer is not None:
            dec_writer.close()
            dec_writer = None
        writer.close()
        dec_tmp.replace(side)
    except BaseException:
        writer.abort()
        if dec_writer is not None:
            dec_writer.close()
        dec_tmp.unlink(missing_ok=True)
        raise
    return {"events_file": str(out), "decisions_file": str(side), "events": n_events, "decisions": n_dec,
            "users": users, "seed": seed}
