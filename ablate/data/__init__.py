"""Data sets: one file each in this folder (its ``data:`` config, reader, layout and normalisation), registered once
by ``@DATASETS.register`` and named in the import below. Torch-free; ``ablate.data.loader`` makes torch datasets."""

from ablate.data import ade20k, camvid, cityscapes, synthetic, user_folder, voc  # noqa: F401 - each registers itself
from ablate.data.base import DATASETS, DataSpec

DataConfig = DATASETS.union()  # the discriminated union of every data set's config (``data:`` in a recipe)

__all__ = ["DATASETS", "DataConfig", "DataSpec"]
