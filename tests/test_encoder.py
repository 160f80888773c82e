"""Fitted recipes on the tiny model: hs fit's folder, hs encode and Encoder against hs eval's vectors,
damaged and foreign folders, another model, and recipes that read templates and attention diagonals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.fitted import folder
from analysis.fitted.fit import name_references
from analysis.recipes.recipe import parse_recipe
from analysis.runners.engine import Engine
from cli.main import hs
from encoder import Encoder
from encoder.fit import fit_folder
from hsstore.dump.run import run_dump
from hsstore.dump.sources import CorpusSource, with_templates
from hsstore.errors import HsError
from hsstore.tasks import get_task

from conftest import SENTENCES


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.output


def cosines(X, Y):
    return (X * Y).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(Y, axis=1)


# a contextual recipe with fitted parts, a static one, a mix, and fitted parts of every kind
RECIPES = [
    ("layers=first-last;drop=special;weights=idf@wikitext2;post=whiten@wikitext2+l2", None),
    ("view=avg;drop=special;weights=sif@wikitext2;post=abtt:d=2@wikitext2", None),
    ("view=ctx*0.6+input*0.4;layers=all;pool=max;post=zscore+quantile:n=50", "wikitext2"),
    ("view=re:seed=3;drop=freq5+punct;weights=idf;post=pca:k=8", "sts17"),
]


@pytest.fixture(scope="module")
def fitted_dirs(tiny_store, tmp_path_factory):
    store = hsstore.open(tiny_store)
    root = tmp_path_factory.mktemp("fitted")
    return {recipe: (root / f"r{i}", fit_folder(store, parse_recipe(recipe), root / f"r{i}", fit_on))
            for i, (recipe, fit_on) in enumerate(RECIPES)}


@pytest.mark.parametrize("recipe", [r for r, _ in RECIPES])
def test_encoder_equals_the_vectors_hs_eval_scores(tiny_store, fitted_dirs, recipe):
    store = hsstore.open(tiny_store)
    path, meta = fitted_dirs[recipe]
    corpus = store.corpus("sts17")
    X = Encoder.load(path).encode(corpus.texts, batch_size=16)
    engine = Engine(store, disk_cache=False)
    Y = engine.embed("sts17", parse_recipe(meta["recipe"]))  # refitted by hs eval's engine
    assert X.dtype == np.float32 and X.shape == Y.shape
    assert cosines(X, Y).min() > 0.9999  # float16 storage is the difference (static views: none)
    if recipe.startswith(("view=avg", "view=re")):  # static views read no stored states: equal
        np.testing.assert_allclose(X, Y, rtol=1e-5, atol=1e-5)
    evaluator = engine.evaluator(get_task("sts17"))
    # within 0.01 (the tiny model's 500 sentences; quantile=50 steps move a rank or two); MiniLM: test_encoder_minilm
    assert evaluator(X)["main_score"] == pytest.approx(evaluator(Y)["main_score"], abs=0.01)


def test_rows_follow_the_texts_given_duplicates_included(fitted_dirs):
    enc = Encoder.load(fitted_dirs[RECIPES[0][0]][0])
    texts = [SENTENCES[2], SENTENCES[0], SENTENCES[2], SENTENCES[4]]
    X = enc.encode(texts, batch_size=1)
    alone = np.vstack([enc.encode([t]) for t in texts])
    np.testing.assert_allclose(X, alone, atol=1e-5)
    np.testing.assert_array_equal(X[0], X[2])
    for bad in ("one string", [1, "a"], []):
        with pytest.raises(HsError):
            enc.encode(bad)


def test_the_folder_records_what_it_learned(fitted_dirs):
    path, meta = fitted_dirs[RECIPES[0][0]]
    on_disk = folder.read_meta(path)
    assert on_disk["format"] == "hs-encoder" and on_disk["format_version"] == folder.VERSION
    assert on_disk["recipe"] == meta["recipe"] and on_disk["model"]["tokenizer_sha256"]
    assert set(on_disk["references"]) == {"wikitext2"}
    assert [p["step"] for p in on_disk["post"]] == ["whiten@wikitext2", "l2"]
    assert set(on_disk["files"]) >= {"arrays.safetensors", "vocab.json", "README.md", "tokenizer/tokenizer.json"}
    code, out = run("info", path)
    assert code == 0, out
    assert "whiten@wikitext2: W_ 32 x 32, mean_ 32" in out and "every SHA-256 right" in out
    # the random table is kept by its seed and checked by its digest, not stored
    path, meta = fitted_dirs[RECIPES[3][0]]
    assert not meta["tables"] and list(meta["random_tables"].values())[0]["shape"][0] > 1000
    assert meta["fit_on"] == "sts17" and "idf@sts17" in meta["recipe"]


def test_fit_on_names_the_task_references():
    recipe = name_references(parse_recipe("weights=idf;post=whiten+l2"), "wikitext2")
    assert str(recipe).endswith("weights=idf@wikitext2;post=whiten@wikitext2+l2")
    with pytest.raises(HsError, match="--fit-on CORPUS"):
        name_references(parse_recipe("post=whiten"), None)
    with pytest.raises(HsError, match="leave it out"):
        name_references(parse_recipe("post=whiten@wikitext2"), "wikitext2")


@pytest.mark.parametrize("damage", ["array", "meta", "missing", "foreign"])
def test_damaged_or_foreign_folders_are_one_line_errors(fitted_dirs, tmp_path, damage):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fitted_dirs[RECIPES[0][0]][0], copy)
    if damage == "array":
        data = bytearray((copy / "arrays.safetensors").read_bytes())
        data[-3] ^= 0xFF
        (copy / "arrays.safetensors").write_bytes(bytes(data))
    elif damage == "meta":
        meta = json.loads((copy / "hs-encoder.json").read_text())
        meta["recipe"] = meta["recipe"].replace("whiten", "zscore")
        (copy / "hs-encoder.json").write_text(json.dumps(meta))
    elif damage == "missing":
        (copy / "vocab.json").unlink()
    else:
        (copy / "hs-encoder.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(HsError):
        Encoder.load(copy)
    code, out = run("encode", copy, "--input", copy / "README.md", "--out", tmp_path / "x.npy")
    assert code in (1, 2) and out.startswith("hs: error:") and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "x.npy").exists()


def test_another_model_is_refused(fitted_dirs, other_model):
    with pytest.raises(HsError, match="is not the model the recipe was fitted for"):
        Encoder.load(fitted_dirs[RECIPES[0][0]][0], model=str(other_model))


def test_a_static_recipe_never_loads_the_model(fitted_dirs, monkeypatch):
    from hsstore.dump import model as model_mod

    def refuse(name):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(model_mod, "load", refuse)
    enc = Encoder.load(fitted_dirs[RECIPES[1][0]][0])
    assert not enc.needs_model and enc.encode(SENTENCES).shape == (len(SENTENCES), 32)
    with pytest.raises(AssertionError, match="loaded"):
        Encoder.load(fitted_dirs[RECIPES[0][0]][0])


def test_fit_refuses_what_it_cannot_save(tiny_store, tmp_path):
    store = hsstore.open(tiny_store)
    with pytest.raises(HsError, match="--fit-on"):
        fit_folder(store, parse_recipe("post=whiten"), tmp_path / "a")
    with pytest.raises(HsError, match="has no complete corpus"):
        fit_folder(store, parse_recipe("post=whiten"), tmp_path / "a", fit_on="nope")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(HsError, match="already exists"):
        fit_folder(store, parse_recipe("layers=last"), tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "a").exists()


def test_hs_fit_and_hs_encode_commands(tiny_store, tmp_path):
    out = tmp_path / "f"
    code, text = run("fit", tiny_store, "-r", "drop=special;post=whiten+l2", "--fit-on", "wikitext2", "--out", out)
    assert code == 0, text
    lines = [SENTENCES[1], SENTENCES[0], SENTENCES[1]]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in lines))
    code, text = run("encode", out, "--input", tmp_path / "in.jsonl", "--column", "body", "--out",
                     tmp_path / "v.safetensors", "-q")
    assert code == 0, text
    from safetensors import safe_open

    with safe_open(str(tmp_path / "v.safetensors"), framework="numpy") as f:
        X, ids, meta = f.get_tensor("vectors"), f.get_tensor("ids"), f.metadata()
    assert json.loads(meta["texts"]) == lines and ids.tolist() == [0, 1, 2]
    np.testing.assert_allclose(X, Encoder.load(out).encode(lines), atol=1e-6)
    code, text = run("encode", out, "--input", tmp_path / "in.jsonl", "--column", "body", "--out", "-")
    assert code == 2 and "binary" in text


# ---- templates and attention diagonals -----------------------------------------------------------

@pytest.fixture(scope="module")
def prompt_store(tmp_path_factory, tiny_model):
    """float32 states: denoising subtracts two nearly equal read-out states (the tiny model's differ by
    0.2% of their length), where float16 rounding would be most of the difference."""
    out = tmp_path_factory.mktemp("prompt") / "store"
    sources = with_templates([CorpusSource("biosses", get_task("biosses").texts(), {"task": "biosses"}),
                              CorpusSource("mine", list(SENTENCES), {})], ["none", "promptbert"])
    run_dump(str(tiny_model), sources, out, batch_tokens=512, progress=False, log=lambda m: None,
             attention_diagonals=True, dtype="float32")
    return out


@pytest.mark.parametrize("recipe", [
    "view=prompt;pool=mask:denoise=yes;post=whiten@biosses",
    "view=prompt;drop=template+special;weights=idf@biosses",
    "layers=1,3;drop=special;weights=ditto:layer=2:head=1",
])
def test_templates_and_attention_diagonals_as_the_dump(prompt_store, tmp_path, recipe):
    store = hsstore.open(prompt_store)
    meta = fit_folder(store, parse_recipe(recipe), tmp_path / "f")
    corpus = store.corpus("mine")
    X = Encoder.load(tmp_path / "f").encode(corpus.texts, batch_size=4)
    Y = Engine(store, disk_cache=False).embed("mine", parse_recipe(meta["recipe"]))
    assert cosines(X, Y).min() > 0.99999


def test_sentence_transformers_refuses_templates(prompt_store, tmp_path):
    with pytest.raises(HsError, match="view=prompt"):
        fit_folder(hsstore.open(prompt_store), parse_recipe("view=prompt;pool=mask"), tmp_path / "st",
                   fmt="sentence-transformers")
    assert not Path(tmp_path / "st").exists()
