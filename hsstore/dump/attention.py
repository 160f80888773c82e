"""The model side of ``hs dump --attention-diagonals``: eager attention, and each token's a_ii taken
from the attention weights (the store side is hsstore/store/attention.py)."""
from __future__ import annotations

import numpy as np
import torch

from hsstore.errors import HsError
from hsstore.store.attention import OPTION


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
    if attentions is None or any(a is None for a in attentions):
        raise HsError("the model returned no attention weights; it does not support output_attentions, so "
                      f"{OPTION} cannot be used with it")
    out = [torch.diagonal(a, dim1=-2, dim2=-1).transpose(1, 2)[real] for a in attentions]  # (tokens, heads) each
    return torch.stack(out).to(torch.float16).cpu().numpy()
