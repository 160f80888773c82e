"""``hs fit --format sentence-transformers``: a folder that ``SentenceTransformer(DIR,
trust_remote_code=True)`` loads, the model's own ``Transformer`` module (its config made to return
every layer's states, its length limit the store's) followed by hs's modules (st_modules.py) with the
fitted parts. hs must be installed where it is loaded; the folder's README says so."""
from __future__ import annotations

from pathlib import Path

from analysis.fitted import folder
from analysis.fitted.recipe import FittedRecipe
from hsstore.dump.templated import special_frame
from hsstore.errors import HsError

from .model import load_model

README = """# A fitted hs recipe for sentence-transformers

Recipe: `{recipe}`

Model: `{model}`, fitted on the hs store `{store}`.

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("DIR", trust_remote_code=True)   # needs hs installed: the modules are hs's
X = model.encode(["A man is playing a guitar."])
```

**hs must be installed** (its `encoder` package) where this folder is loaded: after the model's own
Transformer module come hs's modules (`encoder.st_modules`: HsLayers, HsTokenWeights, HsPooling,
HsPost), which compute the recipe with hs's code; `trust_remote_code=True` lets sentence-transformers
import them. The vectors are those of `hs encode` with the same recipe.
"""


def check_recipe(fitted: FittedRecipe) -> None:
    """What sentence-transformers' Transformer module cannot feed hs's modules, refused in one line."""
    recipe = fitted.recipe
    if any(p.template for p in fitted.contextual):
        raise HsError("--format sentence-transformers: view=prompt wraps each text in a template the way hs dump "
                      "does, which sentence-transformers' tokenisation does not; use the hs format (hs encode)")
    if recipe.weights.name == "ditto":
        raise HsError("--format sentence-transformers: weights=ditto reads attention weights, which "
                      "sentence-transformers' Transformer module does not pass on; use the hs format (hs encode)")


def write_sentence_transformers(fitted: FittedRecipe, tokenizer, out: Path, model: str | None = None) -> None:
    from sentence_transformers import SentenceTransformer  # sentence-transformers: only for this format
    from sentence_transformers.sentence_transformer.modules import Transformer

    from .st_modules import HsLayers, HsPooling, HsPost, HsTokenWeights

    check_recipe(fitted)
    meta, arrays, recipe = fitted.meta, fitted.arrays, fitted.recipe
    loaded = load_model(meta["model"], model)  # the store's model, found and checked
    path = loaded.identity["path"]
    if not Path(path).is_dir():
        raise HsError(f"--format sentence-transformers needs the model as a local folder; {path} is not one")
    transformer = Transformer(path, config_kwargs={"output_hidden_states": True},
                              max_seq_length=int(meta["settings"]["max_length"]))
    head, tail = special_frame(tokenizer)
    context = {"model": meta["model"], "settings": meta["settings"], "identity": meta["store"]["identity"],
               "path": meta["store"]["path"], "vocab": list(fitted.store.vocab)}
    layers = sorted({layer for part in fitted.contextual for layer in part.layers})
    counts = {k.removeprefix("stats/"): v for k, v in arrays.items() if k.startswith("stats/")}
    tables = [{"name": f"{view}/{layer}", "view": view, "layer": layer} for view, layer in fitted.tables]
    fields = recipe.fields()
    modules = [
        transformer,
        HsLayers(layers, len(head), len(tail), context),
        HsTokenWeights(fields["drop"], fields["weights"], meta["references"], counts),
        HsPooling(fields["view"], fields["layers"], fields["combine"], fields["pool"], tables,
                  {t["name"]: fitted.tables[(t["view"], t["layer"])] for t in tables}),
        HsPost(meta["post"], {k.removeprefix("post/"): v for k, v in arrays.items() if k.startswith("post/")}),
    ]
    st_model = SentenceTransformer(modules=modules, device="cpu")
    with folder.staged(out) as tmp:
        st_model.save(str(tmp))
        (tmp / "README.md").write_text(README.format(recipe=meta["recipe"], model=meta["model"]["name"],
                                                     store=meta["store"]["path"]))
