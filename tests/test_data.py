"""grue.data.PromptStream: order, determinism, sharding, resumption."""

from __future__ import annotations

import pytest

from grue.data import PromptStream


def test_each_epoch_is_a_permutation():
    s = PromptStream(10, seed=3)
    e0, e1, e2 = s.next_global(10), s.next_global(10), s.next_global(10)
    for epoch in (e0, e1, e2):
        assert sorted(epoch) == list(range(10))
    assert len({tuple(e0), tuple(e1), tuple(e2)}) == 3  # reshuffled every epoch
    assert s.state_dict() == {"epoch": 3, "pos": 0}


def test_chunks_concatenate_to_the_epoch_order():
    whole = PromptStream(12, seed=5).next_global(12)
    s = PromptStream(12, seed=5)
    parts = s.next_global(5) + s.next_global(4) + s.next_global(3)
    assert parts == whole
    assert s.state_dict() == {"epoch": 1, "pos": 0}


def test_deterministic_for_a_seed_and_seeds_differ():
    a, b = PromptStream(50, seed=11), PromptStream(50, seed=11)
    assert a.next_global(70) == b.next_global(70)
    assert PromptStream(50, seed=11).next_global(50) != PromptStream(50, seed=12).next_global(50)


def test_two_ranks_get_disjoint_shards_covering_the_global_batch():
    glob = PromptStream(24, seed=0)
    r0, r1 = PromptStream(24, seed=0, rank=0, world_size=2), PromptStream(24, seed=0, rank=1, world_size=2)
    for _ in range(6):  # 24 examples, 8 per batch: two full epochs, no batch spans two epochs
        g, s0, s1 = glob.next_global(8), r0.next(8), r1.next(8)
        assert len(s0) == len(s1) == 4
        assert set(s0).isdisjoint(s1)
        assert sorted(s0 + s1) == sorted(g)
        assert s0 == g[0::2] and s1 == g[1::2]
    # every rank's position follows the global one
    assert r0.state_dict() == r1.state_dict() == glob.state_dict() == {"epoch": 2, "pos": 0}


def test_shards_across_an_epoch_boundary():
    # 10 examples, batches of 4: the third batch is 2 of epoch 0 then 2 of epoch 1 (an index may
    # appear twice there); the shards still split the global batch by position.
    glob = PromptStream(10, seed=9)
    ranks = [PromptStream(10, seed=9, rank=k, world_size=2) for k in (0, 1)]
    for _ in range(3):
        g = glob.next_global(4)
        s0, s1 = (r.next(4) for r in ranks)
        assert s0 == g[0::2] and s1 == g[1::2]
        assert sorted(s0 + s1) == sorted(g)
    assert ranks[0].state_dict() == ranks[1].state_dict() == {"epoch": 1, "pos": 2}


def test_state_dict_resumes_the_exact_sequence():
    s = PromptStream(9, seed=4)
    s.next_global(7)
    state = s.state_dict()
    assert state == {"epoch": 0, "pos": 7}
    expected = s.next_global(6) + s.next_global(13)

    resumed = PromptStream(9, seed=4)
    resumed.load_state_dict(state)
    assert resumed.next_global(6) + resumed.next_global(13) == expected


def test_state_dict_survives_string_values():
    # a checkpoint read back from JSON/YAML may hold the numbers as strings
    s = PromptStream(6, seed=1)
    s.load_state_dict({"epoch": "1", "pos": "2"})
    assert s.state_dict() == {"epoch": 1, "pos": 2}
    assert s.next_global(4) == PromptStream(6, seed=1).next_global(12)[8:12]


def test_wrap_around_into_the_next_epoch():
    fresh = PromptStream(5, seed=2)
    order0, order1 = fresh.next_global(5), fresh.next_global(5)
    s = PromptStream(5, seed=2)
    assert s.next_global(3) == order0[:3]
    assert s.next_global(4) == order0[3:] + order1[:2]  # 2 left in epoch 0, then 2 of epoch 1
    assert s.state_dict() == {"epoch": 1, "pos": 2}
    # a request larger than the dataset spans several epochs
    s2 = PromptStream(5, seed=2)
    assert s2.next_global(12) == order0 + order1 + PromptStream(5, seed=2).next_global(12)[10:]
    assert s2.state_dict() == {"epoch": 2, "pos": 2}


def test_no_examples_is_an_error():
    with pytest.raises(ValueError):
        PromptStream(0, seed=0)


def test_a_script_dataset_is_read_from_the_hubs_parquet_conversion(monkeypatch):
    """datasets >= 4 refuses loading scripts (GEM/common_gen ships one): the Parquet export is read instead."""
    import datasets

    from grue.errors import GrueError
    from grue.tasks.common import PARQUET_EXPORT, load_hub_split

    calls = []

    def fake(name, config=None, split=None, revision=None):  # the library boundary, as the Hub would answer
        calls.append((name, config, split, revision))
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found common_gen.py")
        return [{"target": "a dog runs"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert load_hub_split("GEM/common_gen", None, "train") == [{"target": "a dog runs"}]
    assert calls == [("GEM/common_gen", None, "train", None), ("GEM/common_gen", "default", "train", PARQUET_EXPORT)]

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(GrueError, match="could not load dataset 'imdb'.*--data-dir DIR"):
        load_hub_split("imdb", None, "test")
