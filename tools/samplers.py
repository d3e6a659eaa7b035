"""Batches of images with similar aspect ratios, so that padding a batch to its largest image wastes little.

`aspect_ratio_groups(dataset)` puts every image in a group (portrait or landscape by default, finer bins on request);
`GroupedBatchSampler` draws indices from any sampler (random, sequential, DistributedSampler) and batches those of
the same group, as torchvision's references/detection do.

Example:
    sampler = DistributedSampler(dataset) if distributed else RandomSampler(dataset)
    batches = GroupedBatchSampler(sampler, aspect_ratio_groups(dataset), batch_size=2)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn)
"""
import bisect
import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler, Subset


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of `batch_size` indices drawn from `sampler`, every batch from a single group.

    A batch is yielded as soon as its group has `batch_size` indices, so the order follows the sampler's. A pass yields
    exactly `len(sampler) // batch_size` batches (the same number on every rank under a DistributedSampler): when the
    full batches fall short, the fullest incomplete groups are completed by repeating indices of the same group drawn
    in this pass; any other leftover indices are left out of this pass, as with `drop_last`.

    Args:
        sampler: yields dataset indices.
        group_ids: the group of every dataset index.
        batch_size: indices per batch.
    """

    def __init__(self, sampler: Sampler[int], group_ids: Sequence[int], batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler = sampler
        self.group_ids = group_ids
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        """Passes the epoch to the inner sampler when it uses one (DistributedSampler shuffles by epoch)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        waiting: dict[int, list[int]] = {}
        drawn: dict[int, list[int]] = {}
        count = 0
        for index in self.sampler:
            group = self.group_ids[index]
            drawn.setdefault(group, []).append(index)
            batch = waiting.setdefault(group, [])
            batch.append(index)
            if len(batch) == self.batch_size:
                yield waiting.pop(group)
                count += 1
        fullest_first = sorted(waiting.items(), key=lambda item: (-len(item[1]), item[0]))
        for group, batch in fullest_first[: len(self) - count]:
            yield batch + list(itertools.islice(itertools.cycle(drawn[group]), self.batch_size - len(batch)))

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size


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
        The group id of each index, for GroupedBatchSampler.
    """
    edges = sorted(k) if isinstance(k, Sequence) else aspect_ratio_bins(k)
    return [bisect.bisect_right(edges, ratio) for ratio in dataset_aspect_ratios(dataset)]
