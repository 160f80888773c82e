"""Attention diagonals: each token's self-attention weight a_ii, per layer and head (Ditto, Chen et al. 2023).

``hs dump --attention-diagonals`` stores them in a corpus's ``attention_diagonal`` array, float16,
dimensions (layer, token, head), chunked along tokens like ``hidden`` (one layer a chunk) with a
CRC-32C per chunk. Layer l (1..L) is the attention inside transformer block l, the block whose
output is hidden layer l; Ditto's "layer 0" is layer 1 here. The weights come from eager attention
(the model's plain softmax(QK^T) path), which such a dump switches the model to.
"""
from __future__ import annotations

import numpy as np

from .errors import HsError

ARRAY = "attention_diagonal"
OPTION = "--attention-diagonals"


def shape(model) -> tuple[int, int]:
    """(layers, heads) of a model's attention."""
    config = model.config
    return int(config.num_hidden_layers), int(config.num_attention_heads)


def use_eager(model) -> None:
    """Attention weights are only returned by the eager implementation."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:
        model.config._attn_implementation = "eager"


def diagonals(attentions, real) -> np.ndarray:
    """(layers, real tokens, heads) float16 from the model's per-layer (batch, heads, seq, seq) weights."""
    import torch

    if attentions is None or any(a is None for a in attentions):
        raise HsError("the model returned no attention weights; it does not support output_attentions, so "
                      f"{OPTION} cannot be used with it")
    out = [torch.diagonal(a, dim1=-2, dim2=-1).transpose(1, 2)[real] for a in attentions]  # (tokens, heads) each
    return torch.stack(out).to(torch.float16).cpu().numpy()


def create_array(group, plan, chunk: int) -> None:
    from zarr.codecs import Crc32cCodec

    layers, heads = plan.attention_shape
    group.create_array(ARRAY, shape=(layers, plan.n_tokens, heads), dtype=np.float16, chunks=(1, chunk, heads),
                       compressors=[Crc32cCodec()], fill_value=0, dimension_names=("layer", "token", "head"))
    group.attrs.update({"attention_layers": list(range(1, layers + 1)), "attention_heads": heads})


class SideArrays:
    """Per-token arrays written beside ``hidden`` in the same chunk-aligned flushes (see writer.py)."""

    def __init__(self, group, store_root, start: int, buf_start: int):
        from .writer import ChunkFiles

        self.files, self.bufs = {}, {}
        if ARRAY in group.array_keys():
            array = group[ARRAY]
            self.files[ARRAY] = ChunkFiles(array, store_root)
            # the committed head of the chunk that later batches complete, as for hidden
            self.bufs[ARRAY] = [np.asarray(array[:, buf_start:start])] if start > buf_start else []

    def add(self, extras: dict | None) -> None:
        for name in self.files:
            if not extras or name not in extras:
                raise RuntimeError(f"a batch arrived without its {name}")
            self.bufs[name].append(extras[name])

    def write(self, start: int, n: int) -> None:
        """Write the buffered arrays' first ``n`` tokens at token ``start``."""
        for name, files in self.files.items():
            buf = self.bufs[name]
            data = np.concatenate(buf, axis=1) if len(buf) > 1 else buf[0]
            files.write(data[:, :n], start)
            self.bufs[name] = [data[:, n:]] if n < data.shape[1] else []


def has_diagonals(corpus) -> bool:
    return "attention_layers" in corpus.attrs


def read_diagonal(corpus, layer: int, head: int) -> np.ndarray:
    """a_ii of every token of ``corpus`` at attention layer ``layer`` (1..L) and head ``head``, float32."""
    if not has_diagonals(corpus):
        raise HsError(f"corpus {corpus.name!r} of {corpus.store.path} has no attention diagonals; dump it with "
                      f"`hs dump {OPTION}` (into a new store or under another name)")
    layers, heads = corpus.attrs["attention_layers"], int(corpus.attrs["attention_heads"])
    if layer not in layers:
        raise HsError(f"attention layer {layer} does not exist: layers are {layers[0]}..{layers[-1]} "
                      f"(layer l is the attention of transformer block l)")
    if not 0 <= head < heads:
        raise HsError(f"attention head {head} does not exist: heads are 0..{heads - 1}")
    try:
        return np.asarray(corpus.raw(ARRAY)[layers.index(layer), :, head], dtype=np.float32)
    except (ValueError, OSError) as exc:
        if "checksum" not in str(exc).lower():
            raise
        raise HsError(f"corpus {corpus.name!r} of {corpus.store.path} has a corrupt chunk in its attention "
                      f"diagonals (checksum mismatch); dump the corpus again into a new store") from None
