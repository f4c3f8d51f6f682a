"""Device profiles: ONE table, documented constant by constant in ``devices.md`` (a test keeps them in step).

A profile says how ``bench`` limits the measuring process on this host (runtime threads, CPU
affinity, an address-space cap equal to the memory budget) and how host timings are projected to
the device. The projection's constant is ``calib_ms``: how long the host calibration block
(``host.py``) takes on the device's core, fitted on published fp32 one-thread latencies of public
architectures (``calibration/published.py``, ``benchmarks/calibrate_devices.py``). The speed relative
to a host is ``host calib_ms / device calib_ms``, with the host's calibration block measured, never
assumed. Geekbench 5 single-core scores stay in the table as a cross-check (devices.md), and derive
the two profiles no published fp32 figure covers (``calibrated`` says which).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeintent.registry import Registry
from edgeintent.runtime_sim.host import HostRecord

# Geekbench 5 single-core estimate of the Zen 3 EPYC host the profiles were first written on (devices.md);
# used only for the Geekbench cross-check, never by a projection.
HOST_GB5_SINGLE = 1210.0

# Fitted by `python benchmarks/calibrate_devices.py --json --passes 3 --runs 30` on the calibration rows
# (MNN fp32, one thread, minimum process CPU time, 3 passes pooled) of calibration/published.py, on the
# AMD EPYC Zen 3 host of devices.md; the check ranges are projected / published on the held-out check
# rows, pass by pass (devices.md, "Calibration against published phone latencies").
CALIB_MS_A76 = 10.75  # Snapdragon 855 A76 (Paddle-Lite v2.11 / v2.9 rows)
CALIB_MS_A53 = 61.13  # Snapdragon 625 A53 (Paddle-Lite v2.11) and QRB2210 A53 (ncnn) rows
CHECK_RANGE_A76 = (0.934, 1.130)
CHECK_RANGE_A53 = (0.790, 1.194)
GB5_A76, GB5_A55, GB5_A53, GB5_A16 = 745.0, 152.0, 150.0, 1886.0


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    core: str  # the CPU core class the profile stands for
    threads: int  # runtime intra-op threads (and CPUs pinned) for the model
    cores: int  # cores of that class on the reference device (informational)
    gb5_single: float  # Geekbench 5 single-core score of the reference device (cross-check)
    bandwidth_gbs: float  # single-core achievable memory bandwidth, GB/s
    memory_mb: int  # memory budget the model may add to its process (address-space cap)
    runtime: str  # default runtime (an export target's runtime)
    reference_device: str  # the SoC / phone the figures come from
    calib_ms: float | None  # the host calibration block on this core, ms (None: the host itself)
    calibrated: str  # how calib_ms was obtained
    check_range: tuple[float, float] | None  # projected / published on the held-out check rows (min, max)
    precision: str = "fp32"  # the arithmetic the calibration rows used

    def speed_vs(self, host: HostRecord) -> float:
        """Single-core speed relative to ``host`` (1.0 = the host)."""
        return 1.0 if self.calib_ms is None else host.calib_ms / self.calib_ms

    def bandwidth_vs(self, host: HostRecord) -> float:
        """Single-core memory bandwidth relative to ``host`` (1.0 for the host profile)."""
        if self.calib_ms is None or not host.bandwidth_gbs:
            return 1.0
        return self.bandwidth_gbs / host.bandwidth_gbs

    def as_dict(self, host: HostRecord | None = None) -> dict:
        d = asdict(self)
        if host is not None:
            d |= {"speed_vs_host": round(self.speed_vs(host), 4), "bandwidth_vs_host": round(self.bandwidth_vs(host), 4)}
        return d


_FIT = "fitted on published fp32 one-thread latencies (calibration/published.py)"

# the profiles; registering a name twice is an error
_TABLE: tuple[DeviceProfile, ...] = (
    DeviceProfile("cpu-arm", "mid-range Android phone, big core", "Cortex-A76", threads=1, cores=4,
                  gb5_single=GB5_A76, bandwidth_gbs=17.0, memory_mb=64, runtime="mnn",
                  reference_device="Qualcomm Snapdragon 855 (1x 2.84 + 3x 2.42 GHz A76)",
                  calib_ms=CALIB_MS_A76, calibrated=_FIT, check_range=CHECK_RANGE_A76),
    DeviceProfile("cpu-arm-little", "mid-range Android phone, little core", "Cortex-A55", threads=1, cores=8,
                  gb5_single=GB5_A55, bandwidth_gbs=7.45, memory_mb=64, runtime="mnn",
                  reference_device="Samsung Exynos 850 (8x 2.0 GHz A55)",
                  calib_ms=None if CALIB_MS_A53 is None else round(CALIB_MS_A53 * GB5_A53 / GB5_A55, 2),
                  calibrated="derived: cpu-arm-low's fit × Geekbench 5 A53/A55 (no published fp32 one-thread A55 figure)",
                  check_range=None),
    DeviceProfile("cpu-arm-low", "entry-level Android phone", "Cortex-A53", threads=1, cores=8,
                  gb5_single=GB5_A53, bandwidth_gbs=3.73, memory_mb=32, runtime="mnn",
                  reference_device="Qualcomm Snapdragon 450 (8x 1.8 GHz A53)",
                  calib_ms=CALIB_MS_A53, calibrated=_FIT, check_range=CHECK_RANGE_A53),
    DeviceProfile("iphone", "recent iPhone, performance core", "Apple A16 P-core", threads=1, cores=2,
                  gb5_single=GB5_A16, bandwidth_gbs=25.6, memory_mb=128, runtime="coreml",
                  reference_device="Apple A16 Bionic (iPhone 14 Pro, 2x 3.46 GHz P-cores)",
                  calib_ms=None if CALIB_MS_A76 is None else round(CALIB_MS_A76 * GB5_A76 / GB5_A16, 2),
                  calibrated="derived: cpu-arm's fit × Geekbench 5 A76/A16 (no published fp32 one-thread figure used)",
                  check_range=None),
    DeviceProfile("host", "this machine, unscaled", "this host's CPU", threads=1, cores=2,
                  gb5_single=HOST_GB5_SINGLE, bandwidth_gbs=0.0, memory_mb=1024, runtime="onnx",
                  reference_device="this host (measured: host.py)", calib_ms=None,
                  calibrated="the host itself: factor 1", check_range=None),
)  # fmt: skip


DEVICES: Registry[DeviceProfile] = Registry("device", hint=" (see `edgeintent devices`)")
for _profile in _TABLE:
    DEVICES.register(_profile.name, _profile)


def list_devices() -> list[DeviceProfile]:
    return DEVICES.values()


def get_device(name: str) -> DeviceProfile:
    return DEVICES.get(name)
