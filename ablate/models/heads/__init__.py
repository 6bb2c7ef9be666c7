"""Context heads, one per file, all behind ``ContextHead``. ``HEADS`` maps a recipe's ``head.name`` to its class."""

from ablate.models.heads.aspp import ASPP
from ablate.models.heads.base import ContextHead
from ablate.models.heads.none import NoHead

HEADS: dict[str, type[ContextHead]] = {"none": NoHead, "aspp": ASPP}

__all__ = ["HEADS", "ContextHead"]
