"""The training batch stream is deterministic, resumable and grouped."""
import itertools

from seeded_batches import training_batches


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
