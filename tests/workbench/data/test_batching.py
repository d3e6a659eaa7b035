"""Training batches: deterministic, resumable, one aspect-ratio group per batch."""
import itertools

import pytest
from torch.utils.data import Dataset, Subset

from workbench.data.batching import aspect_ratio_bins, aspect_ratio_groups, training_batches


class Sizes(Dataset):
    """Images of given (height, width), known through get_height_and_width only."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        return index

    def get_height_and_width(self, index):
        return self.sizes[index]


class Ratios(Sizes):
    def aspect_ratios(self):
        return [width / height for height, width in self.sizes]


SIZES = [(10, 20), (20, 10), (10, 10), (30, 10), (10, 40), (10, 12)]


def test_two_groups_by_default_portrait_then_landscape():
    assert aspect_ratio_groups(Sizes(SIZES)) == [1, 0, 1, 0, 1, 1]
    assert aspect_ratio_groups(Ratios(SIZES)) == [1, 0, 1, 0, 1, 1]


def test_finer_groups_and_custom_bins():
    assert aspect_ratio_bins(1) == [0.5, 1.0, 2.0]
    assert aspect_ratio_groups(Ratios(SIZES), k=1) == [3, 1, 2, 0, 3, 2]
    assert aspect_ratio_groups(Ratios(SIZES), k=[1.5, 0.8]) == [2, 0, 1, 0, 2, 1]


def test_subsets_and_datasets_without_sizes():
    assert aspect_ratio_groups(Subset(Ratios(SIZES), [1, 4])) == [0, 1]
    with pytest.raises(TypeError, match="get_height_and_width"):
        aspect_ratio_groups(list(range(3)))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])


def take(stream, n):
    return list(itertools.islice(stream, n))


def test_resuming_skips_exactly_the_consumed_batches():
    whole = take(training_batches(23, 4, seed=3), 12)
    assert take(training_batches(23, 4, seed=3, start_batch=5), 7) == whole[5:]


def test_batches_hold_one_group_each_and_every_index_comes_each_epoch():
    groups = [i % 2 for i in range(40)]
    batches = take(training_batches(40, 4, seed=0, group_ids=groups), 10)
    assert all(len({groups[i] for i, _ in batch}) == 1 for batch in batches)
    assert sorted(i for batch in batches for i, _ in batch) == list(range(40))


def test_ranks_see_disjoint_shares():
    shares = [{i for batch in take(training_batches(40, 2, seed=1, rank=r, world_size=2), 10) for i, _ in batch}
              for r in range(2)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 40


def test_sample_seeds_differ_between_samples():
    seeds = [s for batch in take(training_batches(10, 2, seed=0), 5) for _, s in batch]
    assert len(set(seeds)) == len(seeds)
