"""hs's steps as sentence-transformers modules: what ``hs fit --format sentence-transformers`` writes
after the model's own ``Transformer`` module (st_export.py), and what ``SentenceTransformer(DIR,
trust_remote_code=True)`` loads back (hs must be installed: the modules are this file's classes).

- ``HsLayers``: layer choice. From the Transformer's ``all_layer_embeddings`` (every layer, as the
  model's config has ``output_hidden_states``), the recipe's layers of each text's real tokens, with
  the token kinds the dump stores (the tokens the tokenizer adds around a text are special), as a
  corpus in memory (analysis/embedding/memory.py) under ``features["hs_corpus"]``.
- ``HsTokenWeights``: token filtering and weighting (the recipe's drop and weights steps, with the saved
  token counts of its references): ``features["token_weights"]``, one weight per token (0 drops it).
- ``HsPooling``: the recipe's views (and their mix), layer mix and pooling, with the saved static
  tables: ``features["sentence_embedding"]``.
- ``HsPost``: the fitted post-processing chain.

Each computes its part with the code ``hs eval`` runs (the Pooler, ``tokens.token_weights``,
``post.apply``), so the folder's vectors are the encoder's. Each saves ``config.json`` (its
``config_keys``) and, where it learned arrays, ``arrays.safetensors``; ``load`` reads both back.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sentence_transformers.sentence_transformer.modules import Module

from analysis.embedding import post as post_mod
from analysis.embedding.memory import MemoryCorpus, MemoryStore, ReferenceCounts
from analysis.embedding.pooling import Pooler
from analysis.embedding.tokens import Stats, store_stream, token_weights
from analysis.recipes.recipe import parse_recipe
from analysis.recipes.steps import parse_step
from hsstore.format.layout import KIND_SPECIAL, KIND_TEXT

ARRAYS = "arrays.safetensors"
CORPUS = "input"


class HsModule(Module):
    """Saving and loading shared by the hs modules: config.json, and the arrays they learned."""

    def __init__(self, arrays: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.arrays = arrays or {}

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        if self.arrays:
            save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, os.path.join(output_path, ARRAYS))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token=None, cache_folder=None, revision=None,
             local_files_only: bool = False, **kwargs):
        hub = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder, "revision": revision,
               "local_files_only": local_files_only}
        config = cls.load_config(model_name_or_path, **hub)
        path = cls.load_file_path(model_name_or_path, filename=ARRAYS, **hub)
        return cls(**config, arrays=load_file(path) if path else None)

    def shared_store(self, model) -> MemoryStore:
        """The store in memory that HsLayers keeps for the model this module is part of."""
        for module in model:
            if isinstance(module, HsLayers):
                return module.store
        raise ValueError(f"{type(self).__name__} needs an HsLayers module before it")


class HsLayers(HsModule):
    """Layer choice: the recipe's layers of each text's real tokens as a corpus in memory."""

    config_keys = ["layers", "special_head", "special_tail", "context"]

    def __init__(self, layers: list[int], special_head: int, special_tail: int, context: dict, arrays=None):
        super().__init__(arrays)
        self.layers, self.special_head, self.special_tail, self.context = list(layers), special_head, special_tail, context
        self.store = MemoryStore(context["model"], context["settings"], context["vocab"], context["identity"],
                                 context["path"])

    def forward(self, features: dict, **kwargs) -> dict:
        mask = features["attention_mask"].bool()
        lengths = mask.sum(dim=1).cpu().numpy().astype(np.int64)
        position = (torch.cumsum(mask.long(), dim=1) - 1)[mask].cpu().numpy()  # place of each real token in its text
        length = np.repeat(lengths, lengths)
        special = (position < self.special_head) | (position >= length - self.special_tail)
        hidden = features["all_layer_embeddings"]
        states = None
        if self.layers:
            states = torch.stack([hidden[layer][mask] for layer in self.layers]).float().cpu().numpy()
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        corpus = MemoryCorpus(CORPUS, [f"#{i}" for i in range(len(lengths))], offsets,
                              features["input_ids"][mask].cpu().numpy(), np.where(special, KIND_SPECIAL, KIND_TEXT),
                              self.layers, states)
        features["hs_corpus"] = self.store.with_corpora([corpus]).corpus(CORPUS)
        return features


class HsTokenWeights(HsModule):
    """Token filtering and weighting: each token's weight (0 drops it), from the saved token counts of
    the recipe's references."""

    config_keys = ["drop", "weights", "references"]

    def __init__(self, drop: str, weights: str, references: dict, arrays=None):
        super().__init__(arrays)
        self.drop, self.weights, self.references = drop, weights, references
        self.recipe = parse_recipe(f"drop={drop};weights={weights}")

    def on_model_ready(self, model) -> None:
        store = self.shared_store(model)
        for name, info in self.references.items():
            a = self.arrays
            stats = Stats(a[f"{name}/df"], a[f"{name}/tf"], int(info["n_sentences"]), a[f"{name}/special"].astype(bool))
            store.add(ReferenceCounts(store, name, info["fingerprint"], int(info["n_sentences"]), info["attrs"], stats))

    def forward(self, features: dict, **kwargs) -> dict:
        corpus = features["hs_corpus"]
        stream = store_stream(corpus)
        refs = {"task": stream, **{r: store_stream(corpus.store.corpus(r)) for r in self.recipe.references}}
        weights, _ = token_weights(self.recipe, stream, refs)
        mask = features["attention_mask"].bool()
        padded = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        padded[mask] = torch.from_numpy(weights).to(mask.device)
        features["token_weights"] = padded
        return features


class HsPooling(HsModule):
    """The recipe's views, layer mix and pooling of the weighted tokens (static views from saved tables)."""

    config_keys = ["view", "layers", "combine", "pool", "tables"]

    def __init__(self, view: str, layers: str, combine: str, pool: str, tables: list, arrays=None):
        super().__init__(arrays)
        self.view, self.layers, self.combine, self.pool, self.tables = view, layers, combine, pool, tables
        self.recipe = parse_recipe(f"view={view};layers={layers};combine={combine};pool={pool}")
        self.by_key = {(t["view"], t["layer"]): self.arrays[t["name"]] for t in tables}

    def forward(self, features: dict, **kwargs) -> dict:
        corpus = features["hs_corpus"]
        mask = features["attention_mask"].bool()
        pooler = Pooler(corpus.store, disk_cache=False, tables=self.by_key)
        pooler.use_weights(corpus, features["token_weights"][mask].cpu().numpy())
        X = pooler.embed(corpus, self.recipe)
        features["sentence_embedding"] = torch.from_numpy(np.ascontiguousarray(X)).to(mask.device)
        return features


class HsPost(HsModule):
    """The fitted post-processing chain, in order."""

    config_keys = ["post"]

    def __init__(self, post: list, arrays=None):
        super().__init__(arrays)
        self.post = post
        self.chain = [post_mod.restore(parse_step(p["step"], "post"),
                                       {a: self.arrays[f"{i}/{a}"] for a in p["arrays"]}) for i, p in enumerate(post)]

    def forward(self, features: dict, **kwargs) -> dict:
        X = features["sentence_embedding"]
        out = post_mod.apply(self.chain, X.cpu().numpy())
        features["sentence_embedding"] = torch.from_numpy(np.ascontiguousarray(out)).to(X.device)
        return features
