"""Which provider opens artifacts for a ``--device``: the host's runtimes or the emulated cpu-arm."""

from __future__ import annotations

from edgeintent.errors import ConfigError
from edgeintent.runtimes import HostProvider
from edgeintent.runtimes.emulation import DEVICE, ArmProvider

DEVICES = ("host", DEVICE)


def provider(device: str = "host") -> HostProvider | ArmProvider:
    """The provider of ``device``: ``host`` or the emulated ``cpu-arm``."""
    if device == "host":
        return HostProvider()
    if device == DEVICE:
        return ArmProvider()
    raise ConfigError(f"--device {device}: choose {' or '.join(DEVICES)}")
