"""The model's forward pass for a dump: a batch of the plan in, the chosen layers' states of its real
tokens out (padding dropped, sentences in order), in the stored dtype; on CPU, or CUDA with autocast."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from hsstore.errors import HsError
from hsstore.store.attention import ARRAY
from hsstore.store.writer import CorpusPlan

from . import attention
from .plan import batch_inputs, batch_positions


class Forward:
    """Runs batches through the model and returns the chosen layers' states of the real tokens."""

    def __init__(self, loaded, layers: list[int], device: str, precision: str, out_dtype: str,
                 attention_diagonals: bool = False):
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device)
        self.layers = layers
        self.pad_id = loaded.tokenizer.pad_token_id or 0
        self.out_dtype = {"float16": torch.float16, "float32": torch.float32}[out_dtype]
        amp = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=amp)) if amp else nullcontext
        self.attention_diagonals, self.extras = attention_diagonals, {}
        if attention_diagonals:
            attention.use_eager(self.model)

    def inputs(self, plan: CorpusPlan, b: int):
        ids, mask = batch_inputs(plan, b, self.pad_id)
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def model_states(self, ids, mask, **extra):
        """The bare forward pass: every layer's states, padded."""
        return self.model_outputs(ids, mask, **extra).hidden_states

    def model_outputs(self, ids, mask, **extra):
        with torch.inference_mode(), self.autocast():
            return self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                              output_attentions=self.attention_diagonals, **extra)

    def __call__(self, plan: CorpusPlan, b: int) -> np.ndarray:
        ids, mask = self.inputs(plan, b)
        positions = batch_positions(plan, b, ids.shape[1])  # template-only rows bring their own
        extra = {} if positions is None else {"position_ids": torch.from_numpy(positions).to(self.device)}
        outputs = self.model_outputs(ids, mask, **extra)
        hidden = outputs.hidden_states
        with torch.inference_mode():
            real = mask.bool()
            if self.attention_diagonals:
                self.extras = {ARRAY: attention.diagonals(outputs.attentions, real)}
            size = hidden[0].shape[-1]
            out = torch.empty((len(self.layers), int(real.sum()), size), dtype=self.out_dtype, device=self.device)
            for i, layer in enumerate(self.layers):
                out[i] = hidden[layer][real]  # real tokens only, sentences in order, cast on copy
            return out.cpu().numpy()


def pick_device(device: str, precision: str) -> tuple[str, str]:
    """``auto`` resolved: CUDA where torch sees a GPU, with fp16 autocast there and fp32 on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise HsError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if precision == "auto":
        precision = "fp16" if device == "cuda" else "fp32"
    return device, precision
