"""``hs fit``: a recipe fitted on a store (analysis/fitted/fit.py), written as a folder in one of the
formats people load: hs's own (analysis/fitted/folder.py, for ``hs encode`` and ``Encoder``),
sentence-transformers' (st_export.py), or, for a static linear recipe, model2vec's ``StaticModel``
and sentence-transformers' ``StaticEmbedding`` (static_export.py)."""
from __future__ import annotations

from pathlib import Path

from analysis.fitted import folder
from analysis.fitted.fit import fit
from analysis.fitted.recipe import FittedRecipe
from analysis.recipes.recipe import Recipe
from hsstore.errors import HsError
from hsstore.store import Store

from .model import TOKENIZER_DIR, model_tokenizer

FORMATS = {
    "hs": "hs's fitted folder: hs encode DIR, encoder.Encoder.load(DIR)",
    "sentence-transformers": "SentenceTransformer(DIR, trust_remote_code=True): the model, then hs modules (hs installed)",
    "model2vec": "model2vec StaticModel.from_pretrained(DIR) (static linear recipes; no hs needed)",
    "static-embedding": "sentence-transformers with a StaticEmbedding module (static linear recipes; no hs needed)",
}


def readme(meta: dict) -> str:
    """The README of an hs fitted folder: what it holds and how to use it."""
    return f"""# A fitted hs recipe

Recipe: `{meta['recipe']}`

Model: `{meta['model']['name']}` ({meta['model']['architecture']}, {meta['model']['n_layers']} layers), fitted on the
store `{meta['store']['path']}`{f" (steps without @REF on corpus `{meta['fit_on']}`)" if meta.get('fit_on') else ""}.

```bash
hs info DIR                                  # what this folder holds
hs encode DIR --input texts.txt --out vectors.npy
```

```python
from encoder import Encoder                  # hs must be installed
X = Encoder.load("DIR").encode(["A man is playing a guitar."])
```

`hs-encoder.json` records the format, the hs version, the model identity and the SHA-256 of every
file; a damaged or edited folder is refused. See hs's docs/encoders.md.
"""


def fit_folder(store: Store, recipe: Recipe, out: Path, fit_on: str | None = None, fmt: str = "hs",
               model: str | None = None) -> dict:
    """Fit ``recipe`` on ``store`` and write it to ``out`` in format ``fmt``; returns the folder's meta."""
    if fmt not in FORMATS:
        raise HsError(f"unknown --format {fmt!r}; choose {', '.join(FORMATS)}")
    folder.check_new_folder(out)
    tokenizer = model_tokenizer(store.model, model)  # before the fitting: a missing model fails at once
    parts = fit(store, recipe, fit_on)
    meta = {**parts["meta"], "tokenizer": TOKENIZER_DIR}
    if fmt == "hs":
        folder.write(out, meta, parts["arrays"], parts["vocab"],
                     add_files=lambda tmp: tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR)), readme=readme(meta))
        return meta
    fitted = FittedRecipe({**parts, "meta": meta})
    if fmt == "sentence-transformers":
        from .st_export import write_sentence_transformers  # sentence-transformers: only for this format

        write_sentence_transformers(fitted, tokenizer, out, model)
    else:
        from .static_export import write_static  # torch/tokenizers: only for these formats

        write_static(fitted, tokenizer, out, fmt)
    return meta
