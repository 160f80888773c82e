"""``hs fit --format model2vec`` and ``--format static-embedding``: a static linear recipe folded into
one token table (analysis/fitted/static.py) and written as model2vec's ``StaticModel`` folder or as a
sentence-transformers folder of one ``StaticEmbedding`` module (and ``Normalize`` where the recipe ends
with l2). Both load without hs; their vectors have the recipe's direction (docs/encoders.md)."""
from __future__ import annotations

import json
from pathlib import Path

from analysis.fitted import folder
from analysis.fitted.recipe import FittedRecipe
from analysis.fitted.static import fold
from hsstore.dump.templated import special_frame

README = """---
library_name: {library}
---
# A static hs recipe, folded into one token table ({fmt})

Recipe: `{recipe}`, fitted on the hs store `{store}` (model `{model}`). Loads without hs:

```python
{load}
```

Each text's vector is the mean of its tokens' rows, tokenised without special tokens and cut at
{max_length} tokens, as hs cuts them; it points where hs's vector of the recipe points (the same
vector where the recipe ends with l2, the same cosine similarities otherwise).{unk}
"""
LOADS = {
    "model2vec": "from model2vec import StaticModel\n"
                 "X = StaticModel.from_pretrained(\"DIR\").encode([\"A man is playing a guitar.\"])",
    "static-embedding": "from sentence_transformers import SentenceTransformer\n"
                        "X = SentenceTransformer(\"DIR\").encode([\"A man is playing a guitar.\"])",
}
UNK = (" model2vec leaves the unknown token ({unk}) out of each text, where hs keeps it: a text with an unknown "
       "token gets another vector than hs's.")


def _tokenizer(tokenizer, text_tokens: int):
    """The model's fast tokenizer as the formats use it: no padding, cut at ``text_tokens`` (hs's length
    limit less the special tokens, which these formats do not add)."""
    from tokenizers import Tokenizer  # tokenizers: only for these formats

    out = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    out.no_padding()
    out.enable_truncation(text_tokens)
    return out


def write_static(fitted: FittedRecipe, tokenizer, out: Path, fmt: str) -> None:
    head, tail = special_frame(tokenizer)
    table, normalize = fold(fitted, fmt, head + tail)
    meta = fitted.meta
    text_tokens = int(meta["settings"]["max_length"]) - len(head) - len(tail)
    backend = _tokenizer(tokenizer, text_tokens)
    unk = UNK.format(unk=tokenizer.unk_token) if fmt == "model2vec" and tokenizer.unk_token else ""
    readme = README.format(library="model2vec" if fmt == "model2vec" else "sentence-transformers", fmt=fmt,
                           recipe=meta["recipe"], store=meta["store"]["path"], model=meta["model"]["name"],
                           load=LOADS[fmt], max_length=text_tokens, unk=unk)
    with folder.staged(out) as tmp:
        if fmt == "model2vec":
            _write_model2vec(tmp, table, backend, normalize, text_tokens, meta["model"]["name"])
        else:
            from sentence_transformers import SentenceTransformer  # sentence-transformers: only for this format
            from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding

            modules = [StaticEmbedding(backend, embedding_weights=table)] + ([Normalize()] if normalize else [])
            SentenceTransformer(modules=modules, device="cpu").save(str(tmp))
        (tmp / "README.md").write_text(readme)


def _write_model2vec(tmp: Path, table, backend, normalize: bool, max_length: int, name: str) -> None:
    """model2vec's folder layout: the table as ``embeddings``, the tokenizer, its config."""
    from safetensors.numpy import save_file  # safetensors: only when a folder is written

    save_file({"embeddings": table}, str(tmp / "model.safetensors"))
    backend.save(str(tmp / "tokenizer.json"))
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": name,
              "apply_pca": None, "sif_coefficient": None, "hidden_dim": int(table.shape[1]), "seq_length": 1000000,
              "normalize": normalize, "max_length": max_length, "embedding_dtype": "float32"}
    (tmp / "config.json").write_text(json.dumps(config, indent=4))
