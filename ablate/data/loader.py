"""From a recipe's ``data:`` spec to torch datasets and the training loader.

``ds[i]`` is validation item i (padded bottom/right to at least the crop, label padding = ignore); ``ds[(i, key)]``
a training item with the papers' augmentation drawn from ``numpy.random.default_rng(key)`` (``ablate.data.sampling``
gives the keys, so batches are a pure function of seed and step). ``ds.rgb(i)`` is the uint8 H x W x 3 image
aligned with ``ds[i]`` (for the dense CRF and the report's qualitative grid); ``ds.denormalize`` maps normalised
tensors back to RGB in [0, 1] with the data set's own mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ablate.data import transforms as T
from ablate.data.base import DataSpec
from ablate.data.sampling import StepBatchSampler

DECODED_BUDGET = 2 << 30  # bytes of decoded training images a process keeps (CamVid's 367 take 253 MB)


def _own(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable array torch may wrap: a copy of a read-only one (a data set's cached arrays are
    read-only; the tensors made from them are new, so no copy is written to)."""
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, order="C")


class SegmentationSet(Dataset):
    def __init__(self, spec: DataSpec, split: str, augment: bool):
        self.spec, self.augment = spec, augment
        self.source = spec.source(split)
        # training reads each image once an epoch: decoding a PNG costs about half of an item's time, so the decoded
        # pairs of a file-backed set are kept while they fit the budget (the in-memory synthetic set needs none)
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._decoded_bytes = 0 if augment and hasattr(self.source, "items") else DECODED_BUDGET
        self.mean = torch.tensor(spec.mean).view(3, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1)
        self.fill = tuple(int(round(255 * m)) for m in spec.mean)  # padding colour: 0 after normalisation

    @property
    def items(self):
        return self.source.items  # the (image, label) files of a folder data set

    def __len__(self) -> int:
        return len(self.source)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        pair = self._decoded.get(index)
        if pair is None:
            pair = self.source.read(index)
            size = pair[0].nbytes + pair[1].nbytes
            if self._decoded_bytes + size <= DECODED_BUDGET:
                self._decoded[index] = pair
                self._decoded_bytes += size
        return pair

    def _padded(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.source.read(index)
        return T.pad_to(image, label, self.spec.crop, self.spec.crop, self.fill, self.spec.ignore_index)

    def rgb(self, index: int) -> np.ndarray:
        """uint8 H x W x 3 RGB of ``ds[index]`` (un-augmented, same padding): a writable, C-contiguous copy."""
        return np.array(self._padded(index)[0], dtype=np.uint8, order="C")

    def context(self, index: int) -> np.ndarray | None:
        """Each pixel's distance (px) to the evidence of its class, NaN where it has none, aligned with
        ``ds[index]`` (padding: NaN), for a data set that knows it (the synthetic one); None otherwise."""
        read = getattr(self.source, "context", None)
        if read is None:
            return None
        context = read(index)
        h, w = context.shape
        pad = ((0, max(0, self.spec.crop - h)), (0, max(0, self.spec.crop - w)))
        return np.pad(context, pad, constant_values=np.nan)

    def to_tensors(self, image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(_own(image)).permute(2, 0, 1).float().div_(255)
        return (img - self.mean) / self.std, torch.from_numpy(_own(label)).long()

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised (N x) 3 x H x W tensor -> RGB in [0, 1]."""
        return (images * self.std.to(images) + self.mean.to(images)).clamp(0, 1)

    def __getitem__(self, item: int | tuple[int, tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        index, key = item if isinstance(item, tuple) else (item, None)
        if self.augment and key is not None:
            image, label = self._read(index)
            s = self.spec
            rng = np.random.default_rng(key)
            image, label = T.augment(
                image, label, rng, s.crop, (s.scale_min, s.scale_max), s.flip, s.mean, s.ignore_index
            )
        else:
            image, label = self._padded(index)
        return self.to_tensors(image, label)


@dataclass
class DataSets:
    train: SegmentationSet
    val: SegmentationSet
    classes: tuple[str, ...]
    ignore_index: int = 255


def eval_set(spec: DataSpec) -> SegmentationSet:
    """The split in ``spec``'s validation role, as evaluation reads it (see ``DataSpec.for_eval``)."""
    return SegmentationSet(spec, "val", augment=False)


def build_datasets(spec: DataSpec) -> DataSets:
    """Train and validation sets; a missing or malformed root raises ``DataRootError`` (one line, the layout)."""
    train = SegmentationSet(spec, "train", augment=True)
    val = SegmentationSet(spec, "val", augment=False)
    return DataSets(train=train, val=val, classes=spec.classes, ignore_index=spec.ignore_index)


def train_loader(
    data: DataSets, batch_size: int, seed: int, steps: int, start: int = 0, num_workers: int = 0
) -> DataLoader:
    """Exactly the batches of steps ``start .. steps-1`` (see ``ablate.data.sampling``). The loader has its own
    generator: creating its iterator must not draw from torch's global RNG, which the checkpoint restores (dropout
    would otherwise see other numbers after a resume than without one)."""
    sampler = StepBatchSampler(len(data.train), batch_size, seed, steps, start)
    return DataLoader(
        data.train,
        batch_sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
