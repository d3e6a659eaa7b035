import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler, Subset

from samplers import GroupedBatchSampler, aspect_ratio_bins, aspect_ratio_groups


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


def test_batches_hold_one_group_and_come_in_sampler_order():
    group_ids = [0, 1, 0, 1, 1, 0, 0, 1]
    batches = list(GroupedBatchSampler(SequentialSampler(range(8)), group_ids, batch_size=2))
    assert batches == [[0, 2], [1, 3], [5, 6], [4, 7]]


def test_incomplete_groups_are_completed_with_repeats_to_the_promised_length():
    group_ids = [0, 0, 0, 1, 1, 1, 2]
    sampler = GroupedBatchSampler(SequentialSampler(range(7)), group_ids, batch_size=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    assert batches[:2] == [[0, 1], [3, 4]]
    assert batches[2] in ([2, 0], [5, 3])
    assert all(len({group_ids[i] for i in batch}) == 1 for batch in batches)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
def test_random_sampling_yields_every_full_batch_of_one_group(batch_size):
    group_ids = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = RandomSampler(range(50), generator=torch.Generator().manual_seed(1))
    batches = list(GroupedBatchSampler(sampler, group_ids, batch_size))
    assert len(batches) == 50 // batch_size
    assert all(len(batch) == batch_size and len({group_ids[i] for i in batch}) == 1 for batch in batches)
    assert len({i for batch in batches for i in batch}) >= 50 - 3 * (batch_size - 1)


def test_works_under_a_distributed_sampler():
    dataset = Ratios([(10, 20) if i % 3 else (20, 10) for i in range(23)])
    group_ids = aspect_ratio_groups(dataset)
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        batches = GroupedBatchSampler(sampler, group_ids, batch_size=2)
        batches.set_epoch(0)
        first = list(batches)
        batches.set_epoch(1)
        assert list(batches) != first, "set_epoch reaches the distributed sampler"
        assert all(len({group_ids[i] for i in batch}) == 1 for batch in first)
        per_rank.append(first)
    assert len(per_rank[0]) == len(per_rank[1]) == 6, "every rank runs the same number of iterations"
    drawn = {i for batches in per_rank for batch in batches for i in batch}
    assert len(drawn) >= 20


def test_feeds_a_data_loader():
    dataset = Ratios(SIZES)
    loader = DataLoader(dataset, batch_sampler=GroupedBatchSampler(SequentialSampler(dataset),
                                                                   aspect_ratio_groups(dataset), batch_size=2))
    assert [batch.tolist() for batch in loader] == [[0, 2], [1, 3], [4, 5]]


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        GroupedBatchSampler(SequentialSampler(range(3)), [0, 0, 0], batch_size=0)
