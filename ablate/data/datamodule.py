"""From a recipe's ``data:`` block to train/val datasets and loaders."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset

from ablate.config import DataConfig
from ablate.data.sampling import StepBatchSampler
from ablate.data.synthetic import IGNORE_INDEX, SyntheticSegmentation


@dataclass
class DataSets:
    train: Dataset
    val: Dataset
    classes: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX


def build_datasets(cfg: DataConfig) -> DataSets:
    """Synthetic (generated in memory) or a real data set read from its root (``ablate.data.layout``); a missing or
    malformed root raises ``ablate.data.layout.DataRootError`` (one line, with the expected layout)."""
    if cfg.name == "synthetic":
        train = SyntheticSegmentation("train", cfg.num_train, cfg.image_size, cfg.seed, augment=True)
        val = SyntheticSegmentation("val", cfg.num_val, cfg.image_size, cfg.seed, augment=False)
        return DataSets(train=train, val=val, classes=SyntheticSegmentation.classes)
    if cfg.name == "voc":
        from ablate.data.voc import VOCSegmentation as cls
    elif cfg.name == "cityscapes":
        from ablate.data.cityscapes import CityscapesSegmentation as cls
    elif cfg.name == "ade20k":
        from ablate.data.ade20k import ADE20KSegmentation as cls
    else:  # pragma: no cover - the config union allows nothing else
        raise ValueError(cfg.name)
    train = cls(cfg, cfg.train_split, augment=True, max_items=cfg.max_train)
    val = cls(cfg, cfg.val_split, augment=False, max_items=cfg.max_val)
    return DataSets(train=train, val=val, classes=cls.classes, ignore_index=cls.ignore_index)


def train_loader(
    data: DataSets, batch_size: int, seed: int, steps: int, start: int = 0, num_workers: int = 0
) -> DataLoader:
    """Exactly the batches of steps ``start .. steps-1`` (see ``ablate.data.sampling``)."""
    sampler = StepBatchSampler(len(data.train), batch_size, seed, steps, start)
    return DataLoader(data.train, batch_sampler=sampler, num_workers=num_workers, persistent_workers=num_workers > 0)
