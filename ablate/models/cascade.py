"""DeepLabv3's cascaded blocks (arXiv:1706.05587 Sec. 3.1, Tables 1-3): block5, block6, ... are new copies of a
ResNet's last stage (block4), appended after it with the same units and channels.

Without atrous convolution each block halves the map: block4 ends at stride 32, block5 at 64, block(4 + k) at
32 x 2^k. At an output stride below that, the block keeps the map and is dilated by the stride it gave up
(``block_geometry``): at OS 16 block4..block7 have rates 2, 4, 8, 16; at OS 256 (Table 1's last column) every block
is strided. Multi-grid unit rates multiply each block's rate, as in block4.

The copies are newly initialised (timm's ResNet init: He normal, fan out; the last BN of each residual branch at
zero), so a model with cascaded blocks starts where the plain backbone is, whatever the weights of block4.
"""

from __future__ import annotations

from timm.models.resnet import BasicBlock, Bottleneck, ResNet, downsample_avg, downsample_conv
from torch import nn

RESNET_UNITS = (BasicBlock, Bottleneck)  # the units ``cascade`` can copy


def block_geometry(output_stride: int, blocks: int) -> list[tuple[int, int]]:
    """``(stride, dilation)`` of block4 and each of ``blocks`` cascaded blocks at ``output_stride``."""
    out = [(1, max(1, 32 // output_stride))]  # block4: timm's stage (its stride is timm's business)
    for k in range(1, blocks + 1):
        nominal = 32 * 2**k
        out.append((2, 1) if nominal <= output_stride else (1, nominal // output_stride))
    return out


def spatial_convs(module: nn.Module) -> list[nn.Conv2d]:
    """The k x k (k > 1) convs of ``module``, in order."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1]


def set_rates(convs: list[nn.Conv2d], rates: list[int]) -> None:
    """Dilate ``convs`` by ``rates`` in order (cycled), with the padding that keeps the map's size."""
    for i, conv in enumerate(convs):
        r = rates[i % len(rates)]
        conv.dilation = (r, r)
        conv.padding = tuple(r * (k - 1) // 2 for k in conv.kernel_size)


def cascade(
    last_stage: list[nn.Module], channels: int, blocks: int, output_stride: int, multi_grid: list[int] | None
) -> nn.Sequential:
    """``blocks`` new copies of ``last_stage`` (the units of block4, of a type in ``RESNET_UNITS``), each
    ``channels`` in and out."""
    template = last_stage[0]
    planes = channels // template.expansion
    kwargs: dict = {}
    if isinstance(template, Bottleneck):  # ResNeXt widths: keep the stage's groups and group width
        cardinality = template.conv2.groups
        kwargs = {"cardinality": cardinality, "base_width": template.conv1.out_channels * 64 // (planes * cardinality)}
    shortcut = template.downsample
    pooled = shortcut is not None and any(isinstance(m, nn.AvgPool2d) for m in shortcut.modules())
    stages = []
    for stride, rate in block_geometry(output_stride, blocks)[1:]:
        units = []
        for u in range(len(last_stage)):
            s = stride if u == 0 else 1
            down = (downsample_avg if pooled else downsample_conv)(channels, channels, 1, stride=s) if s > 1 else None
            units.append(type(template)(channels, planes, s, down, dilation=rate, first_dilation=rate, **kwargs))
        stage = nn.Sequential(*units)
        if multi_grid:
            set_rates(spatial_convs(stage), [unit * rate for unit in multi_grid])
        ResNet.init_weights(stage)  # timm's own init of a ResNet's convs and residual branches, on this stage alone
        stages.append(stage)
    return nn.Sequential(*stages)
