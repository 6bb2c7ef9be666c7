"""Context heads: one torch-free params file each in this folder, registered once by ``@HEADS.register`` and named in
the import below; each names its ``nn.Module`` class (``ablate.models.head_modules``) by import path. ``ablate
heads``, recipe validation and the tests read ``HEADS``. Torch-free (see ``base``)."""

from ablate.models.heads import aspp, context, deformable, hdc, none, ppm, spp  # noqa: F401 - each registers itself
from ablate.models.heads.base import HEADS, HeadParams

HeadConfig = HEADS.union()  # the discriminated union of every head's parameters (``model.head`` in a recipe)

__all__ = ["HEADS", "HeadConfig", "HeadParams"]
