"""`hs embed`: a recipe's vectors of a stored corpus in its original order, in three file formats read
back with numpy, pyarrow and safetensors; the order recorded at dump time, and read again from an
older store's file only when it still matches."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.recipes.recipe import parse_recipe
from analysis.runners import embed as embed_mod
from analysis.runners.embed import embed, original_order
from analysis.runners.engine import Engine
from cli.main import hs
from hsstore.errors import HsError
from hsstore.tasks import get_task

from conftest import SENTENCES

RECIPE = "layers=first-last;drop=special;post=whiten@wikitext2+l2"


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def file_store(tmp_path_factory, tiny_model):
    """A user's file with repeats, dumped through hs dump (which records each text's first position)."""
    root = tmp_path_factory.mktemp("embed")
    lines = [SENTENCES[4], SENTENCES[3], SENTENCES[0], SENTENCES[3], SENTENCES[1], SENTENCES[5], SENTENCES[2]]
    (root / "notes.txt").write_text("\n".join(lines) + "\n")
    code, out = run("dump", "--model", tiny_model, "--corpus-file", root / "notes.txt", "--out", root / "store", "-q")
    assert code == 0, out
    return root, lines


def test_task_rows_follow_the_task_data(tiny_store):
    store = hsstore.open(tiny_store)
    out = embed(store, parse_recipe(RECIPE), "sts17")
    texts = get_task("sts17").texts()
    assert out.texts == texts and out.ids.tolist() == list(range(len(texts)))
    stored = Engine(store, disk_cache=False).embed("sts17", parse_recipe(RECIPE))
    np.testing.assert_array_equal(out.matrix, stored[store.corpus("sts17").ids_of(texts)])
    as_stored = embed(store, parse_recipe(RECIPE), "sts17", order="stored")
    assert as_stored.texts == store.corpus("sts17").texts
    np.testing.assert_array_equal(as_stored.matrix, stored)


def test_a_file_keeps_the_positions_of_its_texts(file_store):
    root, lines = file_store
    store = hsstore.open(root / "store")
    corpus = store.corpus("notes")
    assert corpus.source_positions is not None  # recorded at dump time
    out = embed(store, parse_recipe("layers=last"), "notes")
    first = {}
    for i, text in enumerate(lines):
        first.setdefault(text, i)
    assert out.texts == list(first) and out.ids.tolist() == list(first.values())
    assert corpus.texts != out.texts  # the store's own order is by length


def test_an_older_store_reads_its_file_again_only_if_it_matches(file_store, monkeypatch):
    root, lines = file_store
    corpus = hsstore.open(root / "store").corpus("notes")
    recorded = original_order(corpus)
    monkeypatch.setattr(type(corpus), "source_positions", property(lambda self: None))  # as before it was recorded
    rows, ids = original_order(corpus)
    np.testing.assert_array_equal(rows, recorded[0])
    np.testing.assert_array_equal(ids, recorded[1])
    path = root / "notes.txt"
    try:
        path.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # two texts swapped after the dump
        with pytest.raises(HsError, match="changed after the dump.*--order stored"):
            original_order(corpus)
        path.write_text("\n".join([*lines, "A new line."]) + "\n")  # other texts, its time set back
        os.utime(path, (0, 0))
        with pytest.raises(HsError, match="no longer holds the texts.*--order stored"):
            original_order(corpus)
        path.unlink()
        with pytest.raises(HsError, match="--order stored"):
            original_order(corpus)
    finally:
        path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(corpus, "attrs", {**corpus.attrs, "source": {}})
    with pytest.raises(HsError, match="--order stored"):
        original_order(corpus)
    assert embed_mod.ORDERS == ("original", "stored")


@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".safetensors"])
def test_hs_embed_writes_each_format(tiny_store, tmp_path, suffix):
    out = tmp_path / f"v{suffix}"
    code, text = run("embed", tiny_store, "-t", "sts17", "-r", RECIPE, "--out", out, "-q")
    assert code == 0, text
    expected = embed(hsstore.open(tiny_store), parse_recipe(RECIPE), "sts17")
    if suffix == ".npy":
        X = np.load(out)
        side = json.loads(out.with_suffix(".json").read_text())
        ids, texts, info = side["ids"], side["texts"], side
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        X = np.array(table.column("vector").to_pylist(), dtype=np.float32)
        ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
        info = json.loads(table.schema.metadata[b"hs"])
    else:
        from safetensors import safe_open

        with safe_open(str(out), framework="numpy") as f:
            X, ids, meta = f.get_tensor("vectors"), f.get_tensor("ids").tolist(), f.metadata()
        texts, info = json.loads(meta["texts"]), json.loads(meta["hs"])
    np.testing.assert_array_equal(X, expected.matrix)
    assert ids == expected.ids.tolist() and texts == expected.texts
    assert info["recipe"] == str(parse_recipe(RECIPE)) and info["order"] == "original"


def test_hs_embed_refusals_are_one_line(tiny_store, tmp_path):
    for args, says, status in [
        (["-t", "sts17", "-r", "layers=last", "--out", "-"], "binary", 2),
        (["-t", "sts17", "-r", "layers=last", "--out", tmp_path / "v.txt"], "extension", 2),
        (["-r", "layers=last", "--out", tmp_path / "v.npy"], "name one corpus", 2),
        (["--corpus", "nope", "-r", "layers=last", "--out", tmp_path / "v.npy"], "has no corpus", 1),  # missing data: 1
    ]:
        code, text = run("embed", tiny_store, *args, "-q")
        assert code == status and text.startswith("hs: error:") and says in text, text
        assert len(text.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_source_positions_are_verified_and_exported(file_store, tmp_path):
    root, _ = file_store
    code, out = run("verify", root / "store", "--deep")
    assert code == 0, out
    positions = hsstore.open(root / "store").corpus("notes").source_positions
    code, out = run("export", root / "store", tmp_path / "s.h5", "-q")
    assert code == 0, out
    np.testing.assert_array_equal(hsstore.open(tmp_path / "s.h5").corpus("notes").source_positions, positions)
