"""timm ``features_only`` backbones at output stride 8/16/32 (by dilation), with low- and high-level features.

The last stage can be modified after timm has built (and loaded the weights of) the network:

- ``multi_grid`` (DeepLabv3, arXiv:1706.05587 Sec. 3.2): unit rates (r1, r2, r3, ...) for the 3x3 convs of the last
  stage, in order (cycled when the stage has more); each conv's dilation is unit rate x the stage's rate
  (32 / output stride), e.g. OS 16 with (1, 2, 4) gives 2, 4, 8.
- ``hdc_rates`` (Wang et al., arXiv:1702.08502): the dilations of those convs, as given, cycled (e.g. 1, 2, 5);
  a pattern that grids gets a ``GriddingWarning``.
- ``deformable_blocks`` (Dai et al., arXiv:1703.06211): the k x k convs of the last N blocks of the last stage become
  ``DeformConv`` (zero-initialised offsets; ``deformable_modulated`` for v2). The weights are moved, not copied, and
  keep their state-dict names, so pretrained weights (loaded before the swap) are kept and a plain checkpoint still
  loads with only the new ``offset`` keys missing.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from ablate.core.errors import ConfigError
from ablate.models.cascade import RESNET_UNITS, block_geometry, cascade, set_rates
from ablate.models.heads.hdc import warn_gridding
from ablate.models.layers.deform import DeformConv
from ablate.models.weights import WeightSource, source_of


class BuildError(ValueError):
    """A model that cannot be built from its config; ``key`` names the recipe key to fix."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


DILATABLE = "resnet/resnext/resnest/seresnet, convnext, efficientnet/mobilenetv3, regnet, cspnet, nfnet, xception"


class Backbone(nn.Module):
    """Wraps ``timm.create_model(features_only=True, output_stride=...)``.

    ``forward`` returns ``(low, high)``: the stride-4 feature (for the DeepLabv3+ decoder) and the last feature
    (stride ``output_stride``). Families that cannot dilate are refused here, before any training.
    """

    def __init__(
        self,
        name: str,
        output_stride: int = 16,
        pretrained: bool = False,
        weights: str | None = None,
        multi_grid: list[int] | None = None,
        hdc_rates: list[int] | None = None,
        deformable_blocks: int = 0,
        deformable_modulated: bool = False,
        backbone_args: dict | None = None,
        cascade_blocks: int = 0,
    ):
        super().__init__()
        self.cascade: nn.Module | None = None
        if output_stride > 32 * 2**cascade_blocks:
            raise BuildError(
                "model.output_stride",
                f"output stride {output_stride} needs model.cascade_blocks >= {(output_stride // 32).bit_length() - 1} "
                f"(the backbone ends at 32, and each cascaded block can halve the map once); got {cascade_blocks}",
            )
        if name not in VGG_DILATED and not timm.is_model(name):
            close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:5]
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise BuildError("model.backbone", f"unknown timm model '{name}'{hint}")
        if name in VGG_DILATED:
            if output_stride != 8:
                raise BuildError(
                    "model.output_stride",
                    f"backbone '{name}' is the dilated VGG-16 front end (pool4/pool5 removed): use output_stride: 8",
                )
            if multi_grid or hdc_rates or deformable_blocks or backbone_args or cascade_blocks:
                raise BuildError(
                    "model.backbone",
                    f"multi_grid/hdc_rates/deformable_blocks/backbone_args/cascade_blocks do not apply to '{name}'",
                )
            self.body = DilatedVGG16(fc=name == "vgg16_dilated_fc", pretrained=pretrained, weights=weights)
            self._set_features(output_stride)
            return
        source = source_of(weights)
        if source is not None and name != source.architecture:
            raise BuildError(
                "model.backbone",
                f"model.weights '{weights}' are weights of '{source.architecture}', not of '{name}': "
                f"use backbone: {source.architecture}",
            )
        kwargs: dict = {**(backbone_args or {}), "features_only": True}
        kwargs["pretrained"] = source is None and (pretrained or weights is not None)
        if weights is not None and source is None:
            kwargs["pretrained_cfg_overlay"] = {"file": weights}
        timm_stride = min(output_stride, 32)  # beyond 32: the cascaded blocks' strides
        if timm_stride != 32:
            kwargs["output_stride"] = timm_stride
        try:
            self.body = timm.create_model(name, **kwargs)
        except (AssertionError, TypeError, NotImplementedError, ValueError) as exc:
            if backbone_args and isinstance(exc, TypeError):
                message = f"timm could not build '{name}' with {backbone_args}: {exc}"
                raise BuildError("model.backbone_args", message) from None
            if timm_stride == 32:
                raise BuildError("model.backbone", f"timm could not build '{name}' as features: {exc}") from None
            raise BuildError(
                "model.output_stride",
                f"backbone '{name}' cannot run at output stride {output_stride} (it cannot dilate); "
                f"use output_stride: 32 or a family that dilates ({DILATABLE})",
            ) from None
        if source is not None:
            load_source(self.body, source, backbone_args)
        reductions = list(self.body.feature_info.reduction())
        if reductions[-1] != timm_stride:
            raise BuildError(
                "model.output_stride",
                f"backbone '{name}' ends at stride {reductions[-1]}, not {timm_stride} (it ignores dilation); "
                f"use output_stride: {reductions[-1]} or a family that dilates ({DILATABLE})",
            )
        self._set_features(output_stride)
        if multi_grid and hdc_rates:
            raise BuildError(
                "model.hdc_rates", "give multi_grid or hdc_rates, not both (both set the last stage's dilations)"
            )
        if cascade_blocks:
            stage = self.last_stage_blocks()
            if type(stage[0]) not in RESNET_UNITS:
                raise BuildError(
                    "model.cascade_blocks",
                    f"cascaded blocks copy a ResNet stage of BasicBlock/Bottleneck units; the last stage of '{name}' "
                    f"is made of {type(stage[0]).__name__}: use cascade_blocks: 0 or a timm ResNet",
                )
            self.cascade = cascade(stage, self.high_channels, cascade_blocks, output_stride, multi_grid)
        if multi_grid or hdc_rates or deformable_blocks:
            self._modify_last_stage(name, multi_grid, hdc_rates, deformable_blocks, deformable_modulated)

    def _set_features(self, output_stride: int) -> None:
        reductions = list(self.body.feature_info.reduction())
        channels = list(self.body.feature_info.channels())
        # low level: the last feature at stride 4 (or the finest one when the net has none at 4)
        at4 = [i for i, r in enumerate(reductions) if r == 4]
        self.low_index = at4[-1] if at4 else 0
        self.low_channels = channels[self.low_index]
        self.high_channels = channels[-1]
        # the stage before the last (ResNet layer3, PSPNet's "res4"): input of the auxiliary loss head
        self.aux_channels = channels[-2] if len(channels) > 1 else channels[-1]
        self.output_stride = output_stride

    def last_stage_blocks(self) -> list[nn.Module]:
        """The blocks of the module that outputs the last feature (one block if it is not a sequence)."""
        module_name = self.body.feature_info.module_name()[-1]
        stage = None
        for candidate in (module_name, module_name.replace(".", "_")):
            try:
                stage = self.body.get_submodule(candidate)
                break
            except AttributeError:
                continue
        if stage is None:
            raise BuildError("model.backbone", f"cannot find the last stage '{module_name}' of this backbone")
        return list(stage.children()) if isinstance(stage, nn.Sequential) else [stage]

    def last_stage_convs(self) -> list[nn.Module]:
        """The k x k (k > 1) convs of the last stage, in order (plain or deformable)."""
        return [m for b in self.last_stage_blocks() for m in _spatial_convs(b)]

    def _modify_last_stage(self, name, multi_grid, hdc_rates, deformable_blocks, modulated) -> None:
        blocks = self.last_stage_blocks()
        convs = [m for b in blocks for m in _spatial_convs(b)]
        if not convs:
            raise BuildError("model.backbone", f"backbone '{name}' has no k x k convs in its last stage to modify")
        if multi_grid or hdc_rates:
            if hdc_rates:
                warn_gridding(hdc_rates, "model.hdc_rates")
                rates = list(hdc_rates)
            else:
                rates = [unit * block_geometry(self.output_stride, 0)[0][1] for unit in multi_grid]
            set_rates(convs, rates)
        if deformable_blocks:
            if deformable_blocks > len(blocks):
                raise BuildError(
                    "model.deformable_blocks",
                    f"backbone '{name}' has {len(blocks)} block(s) in its last stage; "
                    f"deformable_blocks must be 0..{len(blocks)}",
                )
            for block in blocks[-deformable_blocks:]:
                for parent, attr, conv in _spatial_conv_slots(block):
                    setattr(parent, attr, DeformConv.from_conv(conv, modulated))

    def forward(self, x: torch.Tensor, with_aux: bool = False) -> tuple[torch.Tensor, ...]:
        """``(low, high)``, or ``(low, high, aux)`` with the stage-before-last feature when ``with_aux``."""
        feats = self.body(x)
        high = feats[-1] if self.cascade is None else self.cascade(feats[-1])
        if with_aux:
            return feats[self.low_index], high, feats[-2] if len(feats) > 1 else feats[-1]
        return feats[self.low_index], high


VGG_DILATED = ("vgg16_dilated", "vgg16_dilated_fc")


def source_state(source: WeightSource, backbone_args: dict | None = None) -> dict[str, torch.Tensor]:
    """The source's tensors under the names of its timm model: they follow that model's layout in order, shape for
    shape (the file's own key names are another implementation's); ``BuildError`` when they do not."""
    state = torch.load(source.path(), map_location="cpu", weights_only=True)
    with torch.device("meta"):
        names = timm.create_model(source.architecture, **(backbone_args or {})).state_dict()
    if len(names) != len(state) or any(
        tuple(t.shape) != tuple(ref.shape) for t, ref in zip(state.values(), names.values(), strict=False)
    ):
        raise BuildError(
            "model.weights",
            f"'{source.name}' ({len(state)} tensors) does not match the layout of timm's {source.architecture} "
            f"({len(names)} tensors) in order and shape",
        )
    return dict(zip(names, state.values(), strict=True))


def load_source(body: nn.Module, source: WeightSource, backbone_args: dict | None = None) -> None:
    """Load a package's weights into a timm ``features_only`` net (every tensor of the net must be there; the
    classifier's are left out). On the meta device (the preflight's build) only the file's presence is checked."""
    try:
        source.path()
    except ConfigError as exc:
        raise BuildError("model.weights", str(exc).removeprefix("model.weights: ")) from None
    if any(p.is_meta for p in body.parameters()):
        return
    mapped = source_state(source, backbone_args)
    own = body.state_dict()
    missing = [k for k in own if k not in mapped or mapped[k].shape != own[k].shape]
    if missing:
        raise BuildError("model.weights", f"'{source.name}' has no tensor for {missing[0]} ({len(missing)} missing)")
    body.load_state_dict({k: mapped[k] for k in own}, strict=True)


class _FeatureInfo:
    def __init__(self, channels: list[int], reductions: list[int], modules: list[str]):
        self._c, self._r, self._m = channels, reductions, modules

    def channels(self) -> list[int]:
        return list(self._c)

    def reduction(self) -> list[int]:
        return list(self._r)

    def module_name(self) -> list[str]:
        return list(self._m)


class DilatedVGG16(nn.Module):
    """The dilated VGG-16 front end of DeepLab v1/v2 and Yu & Koltun (2016), built from timm's ``vgg16``.

    pool4 and pool5 are removed; conv5_1..conv5_3 get dilation 2 (and padding 2), so the output stride is 8. With
    ``fc``: fc6 (timm's ``pre_logits.fc1``, 7x7) with dilation 4 (padding 12) and fc7 (1x1), 4096 channels each,
    ReLU and dropout 0.5 as in VGG (Yu & Koltun's front end). Without: conv5_3 (512 channels), the body DeepLab v2
    puts its fc6 branches (LargeFOV / ASPP) on. ImageNet weights load through timm before the surgery (a local file:
    ``pretrained_cfg_overlay=dict(file=...)``), so every layer keeps its trained weights.
    Differences: same-padding convs (Yu & Koltun: no padding inside, reflection padding of the input).

    Features: conv3_3 (256, stride 4, the low level), conv4_3 (512, stride 8, the auxiliary one), conv5_3 or fc7.
    """

    def __init__(self, fc: bool = False, pretrained: bool = False, weights: str | None = None):
        super().__init__()
        kwargs: dict = {"pretrained": pretrained or weights is not None}
        if weights is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": weights}
        vgg = timm.create_model("vgg16", **kwargs)
        layers = list(vgg.features.children())
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]  # pool1..pool5
        if len(pools) != 5:
            raise BuildError("model.backbone", f"unexpected timm vgg16 layout ({len(pools)} pools)")
        self.stage1 = nn.Sequential(*layers[: pools[2]])  # conv1 .. conv3_3 (stride 4)
        self.stage2 = nn.Sequential(*layers[pools[2] : pools[3]])  # pool3, conv4 (stride 8)
        conv5 = layers[pools[3] + 1 : pools[4]]  # pool4 and pool5 removed
        for m in conv5:
            if isinstance(m, nn.Conv2d):
                m.dilation, m.padding = (2, 2), (2, 2)
        self.stage3 = nn.Sequential(*conv5)
        channels = [256, 512, 512]
        if fc:
            fc6, fc7 = vgg.pre_logits.fc1, vgg.pre_logits.fc2
            fc6.dilation, fc6.padding = (4, 4), (12, 12)
            relu = [nn.ReLU(inplace=True), nn.Dropout(0.5)]
            self.stage3.extend([fc6, *relu, fc7, nn.ReLU(inplace=True), nn.Dropout(0.5)])
            channels[-1] = fc7.out_channels
        self.feature_info = _FeatureInfo(channels, [4, 8, 8], ["stage1", "stage2", "stage3"])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        low = self.stage1(x)
        mid = self.stage2(low)
        return [low, mid, self.stage3(mid)]


def _spatial_conv_slots(block: nn.Module) -> list[tuple[nn.Module, str, nn.Conv2d]]:
    """(parent, attribute, conv) of every plain k x k conv (k > 1) in a block, in module order."""
    slots = []
    for parent in block.modules():
        for attr, child in parent.named_children():
            if type(child) is not DeformConv and isinstance(child, nn.Conv2d) and max(child.kernel_size) > 1:
                slots.append((parent, attr, child))
    return slots


def _spatial_convs(block: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in block.modules()
        if isinstance(m, DeformConv)
        or (isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1 and not _is_offset(block, m))
    ]


def _is_offset(block: nn.Module, conv: nn.Module) -> bool:
    return any(isinstance(m, DeformConv) and m.offset is conv for m in block.modules())
