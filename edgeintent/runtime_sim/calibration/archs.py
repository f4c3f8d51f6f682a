"""Public image-classification architectures, written out here because torchvision cannot be installed
beside this project's torch (2.13.0). Each follows torchvision's definition layer for layer (widths,
kernel sizes, strides, squeeze-and-excitation placement, activations); the weights are random (seeded),
which does not change the arithmetic a dense fp32 runtime performs. Only the calibration of device
profiles uses them (``benchmarks/calibrate_devices.py``): they are the models whose one-thread fp32
latencies phones have published.

Written by hand (not copied from torchvision's source) to keep torchvision out of the dependencies.
"""

from __future__ import annotations

import torch
from torch import nn


def _div8(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of 8, never more than 10 % down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _cba(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU6):
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


# --- MobileNetV2 (Sandler et al. 2018; torchvision.models.mobilenet_v2) ------------------------------


class _InvertedResidualV2(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [_cba(cin, hidden, 1)]
        layers += [_cba(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        cin, last = 32, 1280
        layers: list[nn.Module] = [_cba(3, cin, 3, 2)]
        for t, c, n, s in self.SETTING:
            for i in range(n):
                layers.append(_InvertedResidualV2(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_cba(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --- MobileNetV3 (Howard et al. 2019; torchvision.models.mobilenet_v3_large / _small) ----------------


class _SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        sq = _div8(c // 4)
        self.fc1, self.fc2 = nn.Conv2d(c, sq, 1), nn.Conv2d(sq, c, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        s = nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(s))))
        return x * s


class _InvertedResidualV3(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int) -> None:
        super().__init__()
        a = nn.Hardswish if act == "HS" else nn.ReLU
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if exp == cin else [_cba(cin, exp, 1, act=a)]
        layers.append(_cba(exp, exp, k, stride, groups=exp, act=a))
        if se:
            layers.append(_SqueezeExcite(exp))
        layers.append(_cba(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


# (input, kernel, expanded, output, squeeze-excite, activation, stride), torchvision's tables
_V3_LARGE = ((16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
             (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
             (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
             (80, 3, 184, 80, False, "HS", 1), (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
             (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1), (160, 5, 960, 160, True, "HS", 1))  # fmt: skip
_V3_SMALL = ((16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
             (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
             (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
             (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1))  # fmt: skip


class MobileNetV3(nn.Module):
    def __init__(self, variant: str = "large", num_classes: int = 1000) -> None:
        super().__init__()
        table, last = (_V3_LARGE, 1280) if variant == "large" else (_V3_SMALL, 1024)
        layers: list[nn.Module] = [_cba(3, 16, 3, 2, act=nn.Hardswish)]
        layers += [_InvertedResidualV3(*row) for row in table]
        c = table[-1][3]
        layers.append(_cba(c, 6 * c, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(6 * c, last), nn.Hardswish(inplace=True), nn.Dropout(0.2),
                                        nn.Linear(last, num_classes))  # fmt: skip

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --- SqueezeNet 1.1 (Iandola et al. 2016; torchvision.models.squeezenet1_1) -------------------------


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, e1, 1), nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)


class SqueezeNet11(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(inplace=True), pool(), _Fire(64, 16, 64, 64), _Fire(128, 16, 64, 64), pool(),
            _Fire(128, 32, 128, 128), _Fire(256, 32, 128, 128), pool(), _Fire(256, 48, 192, 192),
            _Fire(384, 48, 192, 192), _Fire(384, 64, 256, 256), _Fire(512, 64, 256, 256),
        )  # fmt: skip
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1))  # fmt: skip

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


# --- ShuffleNetV2 x1.0 (Ma et al. 2018; torchvision.models.shufflenet_v2_x1_0) ---------------------


def _shuffle(x, groups: int = 2):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        bf = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(_cba(cin, cin, 3, stride, groups=cin, act=None), _cba(cin, bf, 1, act=nn.ReLU))
        self.branch2 = nn.Sequential(_cba(cin if stride > 1 else bf, bf, 1, act=nn.ReLU),
                                     _cba(bf, bf, 3, stride, groups=bf, act=None), _cba(bf, bf, 1, act=nn.ReLU))  # fmt: skip

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return _shuffle(out)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        widths, repeats = (24, 116, 232, 464, 1024), (4, 8, 4)
        self.conv1 = _cba(3, widths[0], 3, 2, act=nn.ReLU)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], widths[0]
        for n, cout in zip(repeats, widths[1:4], strict=True):
            stages.append(nn.Sequential(*[_ShuffleUnit(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(n)]))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = _cba(cin, widths[4], 1, act=nn.ReLU)
        self.fc = nn.Linear(widths[4], num_classes)

    def forward(self, x):
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


# --- ResNet-18 / -50 (He et al. 2016; torchvision.models.resnet18 / resnet50) -----------------------


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_cba(cin, planes, 3, stride, act=nn.ReLU), _cba(planes, planes, 3, act=None))
        self.down = None if stride == 1 and cin == planes else _cba(cin, planes, 1, stride, act=None)

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * 4
        self.body = nn.Sequential(_cba(cin, planes, 1, act=nn.ReLU), _cba(planes, planes, 3, stride, act=nn.ReLU),
                                  _cba(planes, out, 1, act=None))  # fmt: skip
        self.down = None if stride == 1 and cin == out else _cba(cin, out, 1, stride, act=None)

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self, block, layers: tuple[int, ...], num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cba(3, 64, 7, 2, act=nn.ReLU), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


#: name → constructor; the names the published table uses
ARCHS = {
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": lambda: MobileNetV3("large"),
    "mobilenet_v3_small": lambda: MobileNetV3("small"),
    "squeezenet1_1": SqueezeNet11,
    "shufflenet_v2_x1_0": ShuffleNetV2,
    "resnet18": lambda: ResNet(_Basic, (2, 2, 2, 2)),
    "resnet50": lambda: ResNet(_Bottleneck, (3, 4, 6, 3)),
}

#: parameter counts of torchvision's definitions (its model docs), which :func:`build` checks
TORCHVISION_PARAMS = {
    "mobilenet_v2": 3_504_872, "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
    "squeezenet1_1": 1_235_496, "shufflenet_v2_x1_0": 2_278_604, "resnet18": 11_689_512, "resnet50": 25_557_032,
}  # fmt: skip


def build(name: str, seed: int = 0) -> nn.Module:
    """The architecture in eval mode with seeded random weights."""
    torch.manual_seed(seed)
    model = ARCHS[name]().eval()
    n = sum(p.numel() for p in model.parameters())
    if n != TORCHVISION_PARAMS[name]:
        raise AssertionError(f"{name}: {n} parameters, torchvision's has {TORCHVISION_PARAMS[name]}")
    return model
