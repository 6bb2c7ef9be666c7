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
    train = SyntheticSegmentation("train", cfg.num_train, cfg.image_size, cfg.seed, augment=True)
    val = SyntheticSegmentation("val", cfg.num_val, cfg.image_size, cfg.seed, augment=False)
    return DataSets(train=train, val=val, classes=SyntheticSegmentation.classes)


def train_loader(
    data: DataSets, batch_size: int, seed: int, steps: int, start: int = 0, num_workers: int = 0
) -> DataLoader:
    """Exactly the batches of steps ``start .. steps-1`` (see ``ablate.data.sampling``)."""
    sampler = StepBatchSampler(len(data.train), batch_size, seed, steps, start)
    return DataLoader(data.train, batch_sampler=sampler, num_workers=num_workers, persistent_workers=num_workers > 0)


def val_loader(data: DataSets, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(data.val, batch_size=batch_size, shuffle=False, num_workers=num_workers)
