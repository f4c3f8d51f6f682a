"""Published fp32, one-thread CPU latencies of public architectures on the profiles' core types.

Every row names its source: repository, file, commit and line. Only fp32 arithmetic at one thread is
kept. Rows left out, and why:

- fp16 rows: Paddle-Lite's "运行时精度为 fp16" tables (A76 about 1.9x faster than its fp32), and
  ncnn's rows on ARMv8.2 cores (Snapdragon 855+, RK3588, …), where ``benchncnn`` turns on fp16
  storage and arithmetic (``opt.use_fp16_arithmetic = true`` in ``benchmark/benchncnn.cpp``; the
  ARM layers use it whenever ``cpu_support_arm_asimdhp()``). A Cortex-A53 (ARMv8.0) has no
  half-precision arithmetic, so ncnn's QRB2210 rows are fp32 (``src/layer/arm/convolution_arm.cpp``:
  ``support_fp16_storage = cpu_support_arm_asimdhp()``).
- int8 and sparse rows, and armv7 builds.
- Cortex-A55 (``cpu-arm-little``): no fp32 one-thread figure was found; ncnn's A55 rows are fp16.

``role`` splits the rows once, by architecture, before any fit: ``calibration`` rows (mobilenet_v2,
squeezenet1_1, resnet18) fit a profile's constant; ``check`` rows (mobilenet_v3 large and small,
shufflenet_v2, resnet50) are only compared with the projection.
"""

from __future__ import annotations

from dataclasses import dataclass

PADDLE = "PaddlePaddle/Paddle-Lite"
PADDLE_V211 = ("docs/performance/benchmark.md", "3d329c954c82d3e189e2d3ab35a5558d35e7202a",
               "release/v2.11 (commit 4a3bdbe); Xiaomi MI9 / Redmi 6 Pro; armv8; 1 thread bound to a big core; "
               "warmup 20, mean of 600 runs; input all 1.0, 1x3x224x224")  # fmt: skip
PADDLE_V29 = ("docs/benchmark/benchmark.md", "490e1031d59c052e648d908349c22ebf8aba50b0",
              "release/v2.9; Xiaomi MI9 (Snapdragon 855, sdot enabled); armv8; 1 thread, LITE_POWER_HIGH; "
              "warmup 10, mean of 100 runs; input 1x3x224x224")  # fmt: skip
NCNN = "Tencent/ncnn"
NCNN_QRB = ("benchmark/README.md", "f4e9a782913873aa32ecc18d78f023ea3b951b0e",
            "section 'Arduino UNO Q - QRB2210 (ARM Cortex-A53 @ 2.0GHz x 4)', added in "
            "d0afafe7bd39b0af847a4daf3cc2ce89a771463d; `benchncnn 10 1 0 -1 -1` (1 thread, CPU); avg of 10 runs")  # fmt: skip

CALIBRATION = ("mobilenet_v2", "squeezenet1_1", "resnet18")
CHECK = ("mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x1_0", "resnet50")


@dataclass(frozen=True)
class Published:
    profile: str  # the device profile the row calibrates or checks
    core: str
    soc: str
    arch: str  # a name in archs.ARCHS
    name_there: str  # the model's name in the source
    ms: float  # published latency, fp32, 1 thread
    input_hw: int  # input height = width
    repo: str
    path: str
    commit: str
    line: int
    conditions: str
    excerpt: str  # the source line verbatim: Paddle-Lite v2.11 columns 865, 855, 845, 835, 625, …; v2.9: armv7 1/2/4, armv8 1/2/4 threads; ncnn: avg

    @property
    def role(self) -> str:
        return "calibration" if self.arch in CALIBRATION else "check"

    @property
    def source(self) -> str:
        return f"{self.repo} {self.path}@{self.commit[:10]} line {self.line}"


def _p(profile, core, soc, arch, there, ms, hw, repo, src, line) -> Published:
    return Published(profile, core, soc, arch, there, ms, hw, repo, src[0], src[1], line, src[2], _LINES[(src[1], line)])



_LINES = {  # (commit, line) -> the line verbatim
    (PADDLE_V211[1], 58): "|MobileNetV2|18.52 |19.37 |37.61 |53.47 |106.17 |24.93 |22.07 |73.37 |",
    (PADDLE_V211[1], 59): "|MobileNetV3_large_x1_0|14.46 |15.59 |29.55 |41.74 |96.11 |19.38 |17.46 |63.34 |",
    (PADDLE_V211[1], 60): "|MobileNetV3_small_x1_0|4.73 |5.39 |9.76 |13.45 |39.08 |6.41 |5.85 |21.67 |",
    (PADDLE_V211[1], 61): "|ResNet50|160.97 |161.13 |339.59 |484.79 |831.62 |222.21 |190.38 |616.68 |",
    (PADDLE_V29[1], 48): "mobilenet_v2 |23.77 |14.23 |8.52 |19.98 |12.19 |7.44 ",
    (PADDLE_V29[1], 49): "shufflenet_v2 |10.63 |6.60 |4.24 |9.74 |6.02 |3.99 ",
    (PADDLE_V29[1], 50): "squeezenet |17.44 |11.39 |7.50 |15.33 |10.04 |6.91 ",
    (NCNN_QRB[1], 9667): "          squeezenet  min =   94.15  max =  111.95  avg =   99.15",
    (NCNN_QRB[1], 9671): "        mobilenet_v2  min =   99.85  max =  108.01  avg =  103.90",
    (NCNN_QRB[1], 9672): "        mobilenet_v3  min =   93.31  max =  102.90  avg =   96.41",
    (NCNN_QRB[1], 9674): "       shufflenet_v2  min =   47.57  max =   56.28  avg =   49.89",
    (NCNN_QRB[1], 9683): "            resnet18  min =  276.23  max =  304.36  avg =  289.94",
    (NCNN_QRB[1], 9688): "            resnet50  min =  739.44  max =  774.68  avg =  750.76",
}  # fmt: skip


A76, A53 = "Cortex-A76", "Cortex-A53"
SD855, SD625, QRB = "Snapdragon 855 (A76 @ 2.84 GHz)", "Snapdragon 625 (A53 @ 1.8 GHz)", "QRB2210 (A53 @ 2.0 GHz)"

TABLE: tuple[Published, ...] = (
    # cpu-arm: Cortex-A76, Snapdragon 855, Paddle-Lite
    _p("cpu-arm", A76, SD855, "mobilenet_v2", "MobileNetV2", 19.37, 224, PADDLE, PADDLE_V211, 58),
    _p("cpu-arm", A76, SD855, "squeezenet1_1", "squeezenet (squeezenet_v1.1)", 15.33, 224, PADDLE, PADDLE_V29, 50),
    _p("cpu-arm", A76, SD855, "mobilenet_v3_large", "MobileNetV3_large_x1_0", 15.59, 224, PADDLE, PADDLE_V211, 59),
    _p("cpu-arm", A76, SD855, "mobilenet_v3_small", "MobileNetV3_small_x1_0", 5.39, 224, PADDLE, PADDLE_V211, 60),
    _p("cpu-arm", A76, SD855, "shufflenet_v2_x1_0", "shufflenet_v2", 9.74, 224, PADDLE, PADDLE_V29, 49),
    _p("cpu-arm", A76, SD855, "resnet50", "ResNet50", 161.13, 224, PADDLE, PADDLE_V211, 61),
    # cpu-arm-low: Cortex-A53, Snapdragon 625 (Paddle-Lite) and QRB2210 (ncnn)
    _p("cpu-arm-low", A53, SD625, "mobilenet_v2", "MobileNetV2", 106.17, 224, PADDLE, PADDLE_V211, 58),
    _p("cpu-arm-low", A53, QRB, "mobilenet_v2", "mobilenet_v2", 103.90, 224, NCNN, NCNN_QRB, 9671),
    _p("cpu-arm-low", A53, QRB, "squeezenet1_1", "squeezenet (v1.1, 227x227)", 99.15, 227, NCNN, NCNN_QRB, 9667),
    _p("cpu-arm-low", A53, QRB, "resnet18", "resnet18", 289.94, 224, NCNN, NCNN_QRB, 9683),
    _p("cpu-arm-low", A53, SD625, "mobilenet_v3_large", "MobileNetV3_large_x1_0", 96.11, 224, PADDLE, PADDLE_V211, 59),
    _p("cpu-arm-low", A53, QRB, "mobilenet_v3_large", "mobilenet_v3 (large: 960 -> 1280)", 96.41, 224, NCNN, NCNN_QRB, 9672),
    _p("cpu-arm-low", A53, SD625, "mobilenet_v3_small", "MobileNetV3_small_x1_0", 39.08, 224, PADDLE, PADDLE_V211, 60),
    _p("cpu-arm-low", A53, QRB, "shufflenet_v2_x1_0", "shufflenet_v2", 49.89, 224, NCNN, NCNN_QRB, 9674),
    _p("cpu-arm-low", A53, SD625, "resnet50", "ResNet50", 831.62, 224, PADDLE, PADDLE_V211, 61),
    _p("cpu-arm-low", A53, QRB, "resnet50", "resnet50", 750.76, 224, NCNN, NCNN_QRB, 9688),
)  # fmt: skip


def rows(profile: str | None = None, role: str | None = None) -> list[Published]:
    return [r for r in TABLE if (profile is None or r.profile == profile) and (role is None or r.role == role)]
