"""A deterministic, resumable stream of training batches: every sample carries its own augmentation seed, and a
batch holds images of one aspect-ratio group (portrait or landscape), so that padding it wastes little.

Batch `b` of a run is the same whatever the number of workers and whether the run was resumed: the index order comes
from per-epoch generators, and each sample is augmented under a seed derived from (run seed, rank, batch, position).
Resuming at iteration `i` skips the first batches without loading them.
"""
import bisect
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from workbench.errors import UserError


def sample_seed(seed: int, rank: int, batch: int, position: int) -> int:
    """A 32-bit seed for one sample of one batch."""
    return int(np.random.SeedSequence([seed, rank, batch, position]).generate_state(1)[0])


def shuffled_indices(num_samples: int, seed: int, rank: int, world_size: int) -> Iterator[int]:
    """An endless stream of this rank's share of a new permutation per epoch."""
    epoch = 0
    while True:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        yield from torch.randperm(num_samples, generator=generator)[rank::world_size].tolist()
        epoch += 1


def grouped_batches(
    indices: Iterator[int], group_ids: Sequence[int], batch_size: int
) -> Iterator[list[int]]:
    """Batches of `batch_size` indices of the same group (e.g. landscape or portrait), in stream order."""
    buffers: dict[int, list[int]] = {}
    for index in indices:
        buffer = buffers.setdefault(group_ids[index], [])
        buffer.append(index)
        if len(buffer) == batch_size:
            yield list(buffer)
            buffer.clear()


def training_batches(
    num_samples: int, batch_size: int, seed: int, *, group_ids: Sequence[int] | None = None, rank: int = 0,
    world_size: int = 1, start_batch: int = 0,
) -> Iterator[list[tuple[int, int]]]:
    """Endless batches of (dataset index, sample seed) for this rank, starting at batch `start_batch`.

    Raises:
        UserError: fewer samples than processes: a process without a share of the data would wait for ever.
    """
    if num_samples < world_size:
        raise UserError(f"the training data has {num_samples} images, fewer than the {world_size} processes; "
                         f"each process needs at least one")
    groups = group_ids if group_ids is not None else [0] * num_samples
    stream = grouped_batches(shuffled_indices(num_samples, seed, rank, world_size), groups, batch_size)
    return ([(index, sample_seed(seed, rank, number, position)) for position, index in enumerate(batch)]
            for number, batch in enumerate(stream) if number >= start_batch)


class SeededSamples(Dataset):
    """Wraps a dataset so that item (index, seed) is `dataset[index]` drawn under `seed`.

    The seed goes to python's, numpy's and torch's global generators and, when the dataset's `transforms` has
    `set_random_seed` (albumentations Compose keeps its own generators), to the transforms too.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        transforms = getattr(self.dataset, "transforms", None)
        if hasattr(transforms, "set_random_seed"):
            transforms.set_random_seed(seed)
        return self.dataset[index]


def aspect_ratio_bins(k: int) -> list[float]:
    """Bin edges of width / height: 1 alone for k=0 (portrait, landscape), else 2k+1 edges spaced evenly in log2
    between 1/2 and 2 (torchvision's create_aspect_ratio_groups)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return [1.0] if k == 0 else (2.0 ** np.linspace(-1, 1, 2 * k + 1)).tolist()


def dataset_aspect_ratios(dataset: Dataset) -> list[float]:
    """Width / height of every image of `dataset` (a dataset with `aspect_ratios()` or `get_height_and_width(i)`, or
    a Subset of one), without decoding images."""
    if isinstance(dataset, Subset):
        ratios = dataset_aspect_ratios(dataset.dataset)
        return [ratios[i] for i in dataset.indices]
    if hasattr(dataset, "aspect_ratios"):
        return list(dataset.aspect_ratios())
    if hasattr(dataset, "get_height_and_width"):
        sizes = [dataset.get_height_and_width(i) for i in range(len(dataset))]
        return [width / height for height, width in sizes]
    raise TypeError(f"{type(dataset).__name__} has neither aspect_ratios() nor get_height_and_width(index)")


def aspect_ratio_groups(dataset: Dataset, k: int | Sequence[float] = 0) -> list[int]:
    """The aspect-ratio group of every image of `dataset`.

    Args:
        dataset: a dataset with `aspect_ratios()` or `get_height_and_width(i)` (e.g. CocoDetection), or a Subset.
        k: 0 for two groups (0: portrait, 1: square or landscape), k > 0 for torchvision's 2k + 2 log-spaced groups,
            or a sequence of width / height bin edges.

    Returns:
        The group id of each index, for `training_batches(group_ids=...)`.
    """
    edges = sorted(k) if isinstance(k, Sequence) else aspect_ratio_bins(k)
    return [bisect.bisect_right(edges, ratio) for ratio in dataset_aspect_ratios(dataset)]
