"""Context heads, one per file, all behind ``ContextHead``. ``HEADS`` maps a recipe's ``head.name`` to its class."""

from ablate.models.heads.aspp import ASPP
from ablate.models.heads.base import ContextHead
from ablate.models.heads.context import ContextHeadModule
from ablate.models.heads.deformable import DeformableHead
from ablate.models.heads.hdc import HDC
from ablate.models.heads.none import NoHead
from ablate.models.heads.ppm import PPM
from ablate.models.heads.spp import SPP

HEADS: dict[str, type[ContextHead]] = {
    "none": NoHead,
    "aspp": ASPP,
    "ppm": PPM,
    "spp": SPP,
    "context": ContextHeadModule,
    "hdc": HDC,
    "deformable": DeformableHead,
}

__all__ = ["HEADS", "ContextHead"]
