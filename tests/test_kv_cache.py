"""grue.kv_cache: decoding with reserved room gives the same logits as transformers' growing cache."""

from __future__ import annotations

import pytest
import torch

from grue import kv_cache
from grue.models import load_policy
from grue.action_mask import reorder
from grue.rollout import Decoder

LAYERED = kv_cache._reserved_layer_class() is not None  # transformers 5.x; 4.x keeps its own cache


def self_attention_layers(past):
    return getattr(past, "self_attention_cache", past).layers


def decode(model, ids, mask, steps, room, reorder_at=None):
    torch.manual_seed(1)
    tokens = torch.randint(2, 200, (steps, ids.shape[0]))
    with torch.no_grad():
        d = Decoder(model, ids, mask, room=room)
        logits = [d.logits]
        for t in range(steps):
            if t == reorder_at:  # what a beam search does (NLPO's mask under generate): rows reordered
                reorder(d, torch.tensor([1, 0, 0, 2]))
            d.advance(tokens[t])
            logits.append(d.logits)
    return torch.stack(logits), d


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
@pytest.mark.parametrize("room,reorder_at", [(6, None), (3, None), (6, 2)])
def test_reserved_cache_decodes_what_the_growing_cache_decodes(name, room, reorder_at):
    """Room for all 6 steps, for only 3 (then it falls back to growing), and rows reordered half way (which breaks
    the link to the buffers): the same logits as without room."""
    model = load_policy(name).eval()
    ids = torch.randint(2, 200, (4, 7))
    mask = torch.ones_like(ids)
    mask[:2, :3] = 0  # left padding (causal); seq2seq: padded encoder inputs
    want, plain = decode(model, ids, mask, 6, room=0, reorder_at=reorder_at)
    got, d = decode(model, ids, mask, 6, room=room, reorder_at=reorder_at)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    if LAYERED:
        assert all(type(layer).__name__ == "DynamicLayer" for layer in self_attention_layers(plain.past))
        layers = self_attention_layers(d.past)
        assert all(type(layer).__name__ == "ReservedLayer" for layer in layers)
        prefix = 1 if model.config.is_encoder_decoder else ids.shape[1]
        linked = room >= 6 and reorder_at is None
        assert all(layer._linked() == linked for layer in layers), "in place only while it has room and its buffers"
        assert layers[0].get_seq_length() == prefix + 6
        if linked:
            assert layers[0]._key_buf.shape[-2] == prefix + room
        if model.config.is_encoder_decoder:
            assert all(type(layer).__name__ == "DynamicLayer" for layer in d.past.cross_attention_cache.layers)


@pytest.mark.skipif(not LAYERED, reason="transformers 4.x: no layered cache, nothing is reserved")
def test_reserve_leaves_other_caches_alone():
    from transformers.cache_utils import DynamicCache

    assert kv_cache.reserve("not a cache", 10) == "not a cache"
    empty = DynamicCache()
    assert kv_cache.reserve(empty, 10) is empty and empty.layers == []
    past = DynamicCache()
    past.update(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), 0)
    assert type(kv_cache.reserve(past, 0).layers[0]).__name__ == "DynamicLayer", "no room asked for"
    assert type(kv_cache.reserve(past, 9).layers[0]).__name__ == "ReservedLayer"
