"""The building blocks (torch) that ``ablate.models.heads`` assemble: each head's ``build(in_channels, blocks)`` gets
this module as ``blocks``, so the head files themselves import no torch and the recipe schema can hold them."""

from torch.nn import BatchNorm2d, Conv2d, Dropout, Identity, ReLU, Sequential

from ablate.models.layers.atrous import AtrousConv2d
from ablate.models.layers.context import ContextModule, identity_init_, large_widths
from ablate.models.layers.conv import ResidualConvBN, conv_bn_relu, in_format_of, separable_conv_bn_relu
from ablate.models.layers.deform import DeformConv
from ablate.models.layers.pool import Concat, ImagePooling, PyramidLevel, named

__all__ = [
    "AtrousConv2d",
    "BatchNorm2d",
    "Concat",
    "ContextModule",
    "Conv2d",
    "DeformConv",
    "Dropout",
    "Identity",
    "ImagePooling",
    "PyramidLevel",
    "ReLU",
    "ResidualConvBN",
    "Sequential",
    "conv_bn_relu",
    "identity_init_",
    "in_format_of",
    "large_widths",
    "named",
    "separable_conv_bn_relu",
]
