"""Training batches: deterministic, resumable, one aspect-ratio group per batch."""
import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, Subset

from workbench.data.batching import aspect_ratio_bins, aspect_ratio_groups, shuffled_indices, training_batches


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


@st.composite
def batching_cases(draw):
    """(dataset size, batch size, processes, group of each index, seed) with at least one index per process."""
    world_size = draw(st.integers(1, 4))
    num_samples = draw(st.integers(world_size, 30))
    groups = draw(st.lists(st.integers(0, 2), min_size=num_samples, max_size=num_samples))
    return num_samples, draw(st.integers(1, 5)), world_size, groups, draw(st.integers(0, 2 ** 16))


@settings(max_examples=150, deadline=None)
@given(batching_cases())
def test_each_epoch_the_ranks_share_every_index_once_in_near_equal_parts(case):
    num_samples, _, world_size, _, seed = case
    streams = [shuffled_indices(num_samples, seed, rank, world_size) for rank in range(world_size)]
    for _ in range(3):
        shares = [take(stream, len(range(rank, num_samples, world_size))) for rank, stream in enumerate(streams)]
        assert sorted(i for share in shares for i in share) == list(range(num_samples))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


@settings(max_examples=150, deadline=None)
@given(batching_cases())
def test_batches_are_full_single_group_runs_of_the_ranks_stream_and_every_rank_keeps_yielding(case):
    """Whatever the sizes, groups and ranks: every rank yields as many batches as asked (DDP steps them together);
    each batch is `batch_size` indices of one group; a group's indices are used in the order of the rank's stream,
    none skipped, and fewer than `batch_size` of each group wait; batch b + start_batch is batch b resumed."""
    num_samples, batch_size, world_size, groups, seed = case
    count = 3 * num_samples
    for rank in range(world_size):
        batches = take(training_batches(num_samples, batch_size, seed, group_ids=groups, rank=rank,
                                        world_size=world_size), count)
        assert len(batches) == count
        assert all(len(batch) == batch_size and len({groups[i] for i, _ in batch}) == 1 for batch in batches)
        used = [i for batch in batches for i, _ in batch]
        needed = Counter(groups[i] for i in used)
        seen: dict[int, list[int]] = {}
        for index in shuffled_indices(num_samples, seed, rank, world_size):  # up to where the last batch fills
            seen.setdefault(groups[index], []).append(index)
            if all(len(seen.get(group, [])) >= n for group, n in needed.items()):
                break
        assert index == used[-1]
        for group, indices in seen.items():
            from_batches = [i for i in used if groups[i] == group]
            assert from_batches == indices[:len(from_batches)]
            assert len(indices) - len(from_batches) < batch_size
        resumed = take(training_batches(num_samples, batch_size, seed, group_ids=groups, rank=rank,
                                        world_size=world_size, start_batch=count // 2), count - count // 2)
        assert resumed == batches[count // 2:]


def test_fewer_samples_than_processes_is_an_error_naming_both():
    with pytest.raises(ValueError, match="the training data has 3 images, fewer than the 4 processes"):
        training_batches(3, 2, seed=0, rank=3, world_size=4)
