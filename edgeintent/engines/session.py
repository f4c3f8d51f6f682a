"""The Ray session the engines run in, and the time limit on every job.

:func:`ray_session` joins a running Ray (``ray.init`` with ``RAY_ADDRESS`` set joins a cluster) or starts a
local one with an explicit number of *logical* CPUs (Ray Data and Ray Train each reserve CPUs; declaring
more than the cores keeps them from starving each other on a small machine), its state under a temp dir,
no dashboard, no usage statistics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

from edgeintent.errors import EngineError

#: Ray's side effects turned off before it is imported (unless the environment says otherwise): usage
#: statistics, the token-authentication set-up of a local cluster, the Docker CPU warning
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


def import_ray():
    """The ``ray`` module, or a one-line EngineError naming the extra to install."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EngineError("the ray engine needs Ray: pip install 'edgeintent[ray]'") from None
    return ray


def ray_session(num_cpus: int = 4, temp_dir: str | None = None):
    """Join the Ray session of this process (or ``RAY_ADDRESS``'s cluster), else start a local one."""
    ray = import_ray()
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, configure_logging=False, log_to_driver=False)
        if not os.environ.get("RAY_ADDRESS"):
            kwargs.update(num_cpus=num_cpus, _temp_dir=temp_dir, object_store_memory=_store_bytes())
        ray.init(**kwargs)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def _store_bytes() -> int:
    """Object store size: a quarter of the memory, at most 4 GiB (Ray's default takes 30 %)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(total // 4, 4 << 30))


@contextlib.contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[None]:
    """Raise EngineError if the block runs longer than ``seconds`` (SIGALRM: the main thread only).

    The alarm raises inside the block; if Ray's own code catches that, the block is still failed when
    it returns."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    expired: list[bool] = []
    message = f"{what} ran longer than its time limit of {seconds:g} s"

    def expire(signum, frame):
        expired.append(True)
        raise EngineError(message)

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if expired:
        raise EngineError(message)
