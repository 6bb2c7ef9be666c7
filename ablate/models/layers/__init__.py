"""Torch building blocks shared by the heads (``ablate.models.head_modules``), the decoder and the backbone. A piece
only one head uses lives in that head's module file."""

from ablate.models.layers.conv import conv_bn_relu, in_format_of, separable_conv_bn_relu
from ablate.models.layers.deform import DeformConv
from ablate.models.layers.pool import PyramidLevel

__all__ = ["DeformConv", "PyramidLevel", "conv_bn_relu", "in_format_of", "separable_conv_bn_relu"]
