"""A KV cache that does not copy itself at every decoding step.

transformers' default cache (``DynamicLayer``) grows by ``torch.cat``: each new token copies the whole
cache of every layer, so a step of batched decoding reads and writes all the keys and values so far. On
GPT-2 small, batch 16, the profiler put that at a fifth of a CPU decoding step, and side by side it measured
5-9% of generation (benchmarks/README.md). ``reserve`` gives each layer buffers with room for the whole
generation, and a step writes only its own position.

It works on transformers' layered caches (5.x: ``cache.layers``); an older cache (4.x) is left as it is.
Only plain ``DynamicLayer`` layers are replaced, so sliding-window, static or quantized layers, and
cross-attention caches, keep their own behaviour.
"""

from __future__ import annotations

import functools

import torch


def reserve(past, capacity: int):
    """Give every plain dynamic layer of ``past`` (a transformers Cache after the prefill) room for
    ``capacity`` positions in all. Returns ``past``, changed in place where it could be. For an
    encoder-decoder cache only the decoder's self-attention is reserved."""
    layer_class = _reserved_layer_class()
    if layer_class is None or capacity <= 0:
        return past
    cache = getattr(past, "self_attention_cache", past)
    layers = getattr(cache, "layers", None)
    if not isinstance(layers, list):
        return past
    dynamic = layer_class.__bases__[0]  # transformers' DynamicLayer
    for i, layer in enumerate(layers):
        if type(layer) is dynamic and getattr(layer, "is_initialized", False) and layer.keys.dim() == 4:
            layers[i] = layer_class.from_layer(layer, capacity)
    return past


@functools.lru_cache(maxsize=1)
def _reserved_layer_class():
    """``ReservedLayer``, built on this transformers' ``DynamicLayer``; None where it has none (4.x)."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return None

    class ReservedLayer(DynamicLayer):
        """A ``DynamicLayer`` whose ``keys``/``values`` (B,H,T,D) are the first T positions of buffers
        (B,H,capacity,D): ``update`` writes the new positions in place and widens the views. Anything
        else that replaces ``keys`` (a beam reorder, a crop) breaks the link, and from then on the layer
        concatenates as ``DynamicLayer`` does; so does an update that would pass ``capacity``."""

        @classmethod
        def from_layer(cls, layer, capacity: int):
            new = cls.__new__(cls)
            new.__dict__.update(layer.__dict__)
            B, H, T, D = layer.keys.shape
            capacity = max(capacity, T)
            new._key_buf = layer.keys.new_empty(B, H, capacity, D)
            new._value_buf = layer.values.new_empty(B, H, capacity, layer.values.shape[-1])
            new._key_buf[:, :, :T] = layer.keys
            new._value_buf[:, :, :T] = layer.values
            new.keys, new.values = new._key_buf[:, :, :T], new._value_buf[:, :, :T]
            return new

        def _linked(self) -> bool:
            buf = getattr(self, "_key_buf", None)
            return (
                buf is not None
                and self.keys.data_ptr() == buf.data_ptr()
                and self.values.data_ptr() == self._value_buf.data_ptr()
                and self.keys.shape[:2] == buf.shape[:2]
                and self.keys.stride() == buf.stride()
            )

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            T, n = self.keys.shape[-2], key_states.shape[-2]
            if not self._linked() or T + n > self._key_buf.shape[-2]:
                self._key_buf = self._value_buf = None
                return super().update(key_states, value_states, *args, **kwargs)
            self._key_buf[:, :, T : T + n] = key_states
            self._value_buf[:, :, T : T + n] = value_states
            self.keys, self.values = self._key_buf[:, :, : T + n], self._value_buf[:, :, : T + n]
            return self.keys, self.values

    return ReservedLayer
