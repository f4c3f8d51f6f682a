"""Device profiles: ONE table, documented constant by constant in ``devices.md`` (a test keeps them in step).

A profile says how ``bench`` limits the measuring process on this host (runtime threads, CPU
affinity, an address-space cap equal to the memory budget) and how host timings are projected to
the device (single-core speed and memory bandwidth relative to this host). The relative figures are
derived from the absolute ones below (Geekbench 5 single-core scores and single-core memory
bandwidth), so that every number has one source in devices.md. Figures marked ``estimate`` in
devices.md are derived, not looked up; devices.md says how.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeintent.registry import Registry

# The host this project is benched on (see devices.md, "host"): AMD EPYC (Zen 3, family 25 model 1,
# 2.45 GHz base as reported in /proc/cpuinfo) in a 2-vCPU KVM guest.
HOST_GB5_SINGLE = 1210.0  # estimate: see devices.md
HOST_BW_GBS = 8.85  # measured single-core copy bandwidth (read + write), command in devices.md


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    core: str  # the CPU core class the profile stands for
    threads: int  # runtime intra-op threads (and CPUs pinned) for the model
    cores: int  # cores of that class on the reference device (informational)
    gb5_single: float  # Geekbench 5 single-core score of the reference device
    bandwidth_gbs: float  # single-core achievable memory bandwidth, GB/s
    memory_mb: int  # memory budget the model may add to its process (address-space cap)
    runtime: str  # default runtime (an export target's runtime)
    reference_device: str  # the SoC / phone the figures come from

    @property
    def speed(self) -> float:
        """Single-core speed relative to this host (1.0 = host)."""
        return round(self.gb5_single / HOST_GB5_SINGLE, 3)

    @property
    def bandwidth(self) -> float:
        """Single-core memory bandwidth relative to this host."""
        return round(self.bandwidth_gbs / HOST_BW_GBS, 3)

    def as_dict(self) -> dict:
        return asdict(self) | {"speed_vs_host": self.speed, "bandwidth_vs_host": self.bandwidth}


# the profiles; registering a name twice is an error
_TABLE: tuple[DeviceProfile, ...] = (
    DeviceProfile("cpu-arm", "mid-range Android phone, big core", "Cortex-A76", threads=1, cores=4,
                  gb5_single=745.0, bandwidth_gbs=17.0, memory_mb=64, runtime="mnn",
                  reference_device="Qualcomm Snapdragon 855 (1x 2.84 + 3x 2.42 GHz A76)"),
    DeviceProfile("cpu-arm-little", "mid-range Android phone, little core", "Cortex-A55", threads=1, cores=8,
                  gb5_single=152.0, bandwidth_gbs=7.45, memory_mb=64, runtime="mnn",
                  reference_device="Samsung Exynos 850 (8x 2.0 GHz A55)"),
    DeviceProfile("cpu-arm-low", "entry-level Android phone", "Cortex-A53", threads=1, cores=8,
                  gb5_single=150.0, bandwidth_gbs=3.73, memory_mb=32, runtime="mnn",
                  reference_device="Qualcomm Snapdragon 450 (8x 1.8 GHz A53)"),
    DeviceProfile("iphone", "recent iPhone, performance core", "Apple A16 P-core", threads=1, cores=2,
                  gb5_single=1886.0, bandwidth_gbs=25.6, memory_mb=128, runtime="coreml",
                  reference_device="Apple A16 Bionic (iPhone 14 Pro, 2x 3.46 GHz P-cores)"),
    DeviceProfile("host", "this machine, unscaled", "AMD EPYC (Zen 3)", threads=1, cores=2,
                  gb5_single=HOST_GB5_SINGLE, bandwidth_gbs=HOST_BW_GBS, memory_mb=1024, runtime="onnx",
                  reference_device="this host (2-vCPU KVM guest)"),
)  # fmt: skip


DEVICES: Registry[DeviceProfile] = Registry("device", hint=" (see `edgeintent devices`)")
for _profile in _TABLE:
    DEVICES.register(_profile.name, _profile)


def list_devices() -> list[DeviceProfile]:
    return DEVICES.values()


def get_device(name: str) -> DeviceProfile:
    return DEVICES.get(name)
