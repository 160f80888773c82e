"""hs fit's other formats, loaded with the real packages: sentence-transformers (hs's modules after the
model's Transformer), model2vec's StaticModel and sentence-transformers' StaticEmbedding (without hs)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hsstore
from analysis.recipes.recipe import parse_recipe
from encoder import Encoder
from encoder.fit import fit_folder
from hsstore.errors import HsError

sentence_transformers = pytest.importorskip("sentence_transformers")
model2vec = pytest.importorskip("model2vec")


def cosines(X, Y):
    return (X * Y).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(Y, axis=1)


@pytest.fixture(scope="module")
def texts(tiny_store):
    return hsstore.open(tiny_store).corpus("sts17").texts[:120]


def both(store_path, recipe, root, fmt):
    """The hs folder and the ``fmt`` folder of one recipe."""
    store = hsstore.open(store_path)
    fit_folder(store, parse_recipe(recipe), root / "hs")
    fit_folder(store, parse_recipe(recipe), root / fmt, fmt=fmt)
    return Encoder.load(root / "hs"), root / fmt


@pytest.mark.parametrize("recipe", [
    "layers=first-last;drop=special;weights=idf@wikitext2;post=whiten@wikitext2+l2",
    "view=ctx*0.5+avg*0.5;layers=all;pool=max;drop=punct;post=zscore@wikitext2",
])
def test_sentence_transformers_folder_gives_the_encoders_vectors(tiny_store, tmp_path, texts, recipe):
    enc, path = both(tiny_store, recipe, tmp_path, "sentence-transformers")
    model = sentence_transformers.SentenceTransformer(str(path), trust_remote_code=True, device="cpu")
    np.testing.assert_allclose(model.encode(texts, batch_size=16), enc.encode(texts), atol=2e-5)
    assert "hs must be installed" in (path / "README.md").read_text()
    # each hs module's config and arrays round-trip through its own folder
    modules = json.loads((path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "HsLayers", "HsTokenWeights",
                                                               "HsPooling", "HsPost"]
    for entry, module in zip(modules[1:], list(model)[1:]):
        again = type(module).load(str(path), subfolder=entry["path"])
        assert again.get_config_dict() == module.get_config_dict()
        assert json.loads((path / entry["path"] / "config.json").read_text()) == module.get_config_dict()
        assert again.arrays.keys() == module.arrays.keys()
        for key in module.arrays:
            np.testing.assert_array_equal(again.arrays[key], module.arrays[key])


@pytest.mark.parametrize("recipe", [
    "view=avg;drop=special;weights=idf@wikitext2;post=whiten@wikitext2+l2",
    "view=input;drop=special+punct;weights=sif@wikitext2;post=abtt:d=2@wikitext2+pca:k=16@wikitext2",
    "view=avg;layers=first-last;combine=concat;weights=idf@wikitext2",
])
@pytest.mark.parametrize("fmt", ["model2vec", "static-embedding"])
def test_static_folders_load_without_hs_and_point_the_same_way(tiny_store, tmp_path, texts, recipe, fmt):
    enc, path = both(tiny_store, recipe, tmp_path, fmt)
    if fmt == "model2vec":
        got = model2vec.StaticModel.from_pretrained(str(path)).encode(texts)
    else:
        got = sentence_transformers.SentenceTransformer(str(path), device="cpu").encode(texts)
    want = enc.encode(texts)
    assert got.shape == want.shape
    assert cosines(got, want).min() > 0.99999
    if recipe.endswith("+l2"):  # both scaled to unit length: the same vectors (whitening's float32 rounding)
        np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("recipe, says", [
    ("view=avg*0.5+input*0.5;drop=special", "view mix"),
    ("layers=last;drop=special", "reads the model's states"),
    ("view=avg;pool=max;drop=special", "pool=max"),
    ("view=avg;drop=special;post=quantile@wikitext2", "quantile"),
    ("view=avg;drop=special;post=l2+whiten@wikitext2", "l2 before the end"),
    ("view=avg;weights=sif@wikitext2", "[CLS], [SEP]"),
])
def test_recipes_that_do_not_fold_are_refused_naming_the_step(tiny_store, tmp_path, recipe, says):
    with pytest.raises(HsError, match=says.replace("[", r"\[").replace("]", r"\]")):
        fit_folder(hsstore.open(tiny_store), parse_recipe(recipe), tmp_path / "m", fmt="model2vec")
    assert not (tmp_path / "m").exists()
