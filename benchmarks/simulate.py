"""Simulator throughput: users per second for one whole config and block by block, side by side.

    python benchmarks/simulate.py --json

``whole`` simulates ``--users`` users in one call; ``blocks`` reads the first two blocks of a
1,000,000-user config (what ``data simulate`` streams to disk). Both print users per second and
events per second; ``blocks_vs_whole`` is the ratio of their users per second (the machine is noisy:
read the ratio). Medians over ``--repeats``, variants interleaved.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)
from edgeintent.toolkit.data.simulator import BLOCK_USERS, SimConfig, iter_simulate, simulate


def _whole(users: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    sim = simulate(SimConfig(users=users, seed=0))
    return time.perf_counter() - t0, sim.events.n_events


def _blocks() -> tuple[float, int]:
    t0 = time.perf_counter()
    got = list(itertools.islice(iter_simulate(SimConfig(users=1_000_000, seed=1)), 2))
    return time.perf_counter() - t0, sum(b.events.n_events for b in got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    _results.add_args(ap)
    args = ap.parse_args()
    whole, blocks = [], []
    for _ in range(args.repeats):
        whole.append(_whole(args.users))
        blocks.append(_blocks())
    ws, we = statistics.median(w[0] for w in whole), whole[0][1]
    bs, be = statistics.median(b[0] for b in blocks), blocks[0][1]
    out = {
        "whole": {"users": args.users, "seconds": ws, "users_per_s": args.users / ws, "events_per_s": we / ws},
        "blocks": {"users": 2 * BLOCK_USERS, "seconds": bs, "users_per_s": 2 * BLOCK_USERS / bs, "events_per_s": be / bs},
    }
    out["blocks_vs_whole"] = out["blocks"]["users_per_s"] / out["whole"]["users_per_s"]
    _results.emit("simulate", out, args)
    if not args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
