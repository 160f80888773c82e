"""Dask: stored layers as dask arrays, `hs eval --scheduler` on a LocalCluster, and streamed pooling."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.runners import on_dask as daskrun
from analysis.embedding import pooling
from analysis.runners.engine import Engine
from analysis.embedding.kernels import pool_states
from analysis.recipes.recipe import parse_recipe
from cli.main import hs
from hsstore.errors import StoreError
from hsstore.tasks import get_task

pytest.importorskip("dask.distributed")


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.output


def one_line_error(output: str, *words: str) -> bool:
    lines = [ln for ln in output.strip().splitlines() if ln.startswith("hs: error:")]
    return len(lines) == 1 and "Traceback" not in output and all(w in lines[0] for w in words)


# --- dask arrays ----------------------------------------------------------------------------------

def test_a_layer_as_a_dask_array_has_the_stored_chunks_and_values(tiny_store):
    corpus = hsstore.open(tiny_store).corpus("wikitext2")
    stored = corpus.raw("hidden")
    for layer in (0, -1):
        array = corpus.dask_layer(layer)
        assert array.shape == (corpus.n_tokens, stored.shape[2]) and array.dtype == stored.dtype
        assert set(array.chunks[0][:-1]) == {stored.chunks[1]} and array.chunks[1] == (stored.shape[2],)
        position = corpus.store.layer_position(layer)
        np.testing.assert_array_equal(array.compute(), np.asarray(stored[position]))  # zarr itself
        np.testing.assert_array_equal(array[5:300:3, 2:7].compute(), np.asarray(stored[position, 5:300:3, 2:7]))


def test_dask_array_reads_are_checked_like_eager_reads(tiny_store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_store, copy)
    chunks = copy / "corpora/wikitext2/hidden/c/1/0"
    victim = sorted(chunks.iterdir())[0]
    array = hsstore.open(copy).corpus("wikitext2").dask_layer(1)
    data = bytearray(victim.read_bytes())
    data[10] ^= 0x01  # a flipped bit: the checksum fails when the block is read
    victim.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt chunk"):
        array.compute()
    victim.unlink()  # a missing chunk: refused when the array is made, never read as zeros
    with pytest.raises(StoreError, match=f"chunk c/1/{victim.name}/0 is missing"):
        hsstore.open(copy).corpus("wikitext2").dask_layer(1)


# --- hs eval --scheduler -------------------------------------------------------------------------

GRID = ("--layers", "last", "--layers", "first-last", "--pool", "mean", "--pool", "max",
        "--post", "whiten@wikitext2", "--weights", "idf@wikitext2")


def scores(path):
    return [(r["hs_task"], r["recipe"], r["scores"]) for r in json.loads(path.read_text())]


def test_scheduler_gives_the_single_process_scores(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("HS_CACHE", str(tmp_path / "cache"))  # the workers inherit it: a cold, shared cache
    args = ("eval", tiny_store, "-t", "sts17", "-t", "biosses", *GRID, "-q")
    code, out = run(*args, "--scheduler", "local:2", "--json", tmp_path / "dask.json")
    assert code == 0, out
    code, out = run(*args, "--no-cache", "--json", tmp_path / "one.json")
    assert code == 0, out
    dask, one = scores(tmp_path / "dask.json"), scores(tmp_path / "one.json")
    assert len(one) == 8 and dask == one  # same scores, same order
    assert len({json.dumps(s) for _, _, s in one}) == 8  # the grid's recipes differ


@pytest.mark.parametrize("address, words", [
    ("local:0", "local:N with N >= 1"), ("local", "local:N"), ("local:two", "local:N"),
    ("tcp://127.0.0.1:9", "cannot reach a dask scheduler"), ("nosuch://host:1", "cannot reach a dask scheduler")])
def test_bad_scheduler_addresses_are_one_line_errors(tiny_store, monkeypatch, address, words):
    monkeypatch.setattr(daskrun, "CONNECT_TIMEOUT_S", 1)
    code, out = run("eval", tiny_store, "-t", "sts17", "--scheduler", address, "-q")
    assert code == 2 and one_line_error(out, address, words), out


def test_jobs_and_scheduler_do_not_combine(tiny_store):
    code, out = run("eval", tiny_store, "-t", "sts17", "--scheduler", "local:1", "--jobs", "2", "-q")
    assert code == 2 and one_line_error(out, "--jobs and --scheduler"), out


def test_pooling_units_are_what_an_evaluation_reads(tiny_store, tmp_path, monkeypatch):
    """A worker that pools the units leaves in the disk cache every pooled matrix the evaluation needs."""
    monkeypatch.setenv("HS_CACHE", str(tmp_path / "cache"))
    recipe = parse_recipe("layers=first-last;pool=mean;weights=idf@wikitext2;post=whiten@wikitext2")
    first = Engine(hsstore.open(tiny_store))
    units = daskrun.pooling_units(first, recipe, get_task("sts17"))
    last = first.store.n_model_layers
    assert [(c, r.layers, r.post) for c, r in units] == [
        (c, str(layer), ()) for c in ("sts17", "wikitext2") for layer in (1, last)]
    for corpus, bare in units:
        first.pooler.embed(first.store.corpus(corpus), bare)
    second = Engine(hsstore.open(tiny_store))  # another worker
    X = second.embed("sts17", recipe)
    assert second.pooler.stats["computed"] == 0 and second.pooler.stats["disk"] == 4
    np.testing.assert_array_equal(X, Engine(hsstore.open(tiny_store), disk_cache=False).embed("sts17", recipe))
    # max pooling over a layer mean is not linear: the unit is the recipe itself
    units = daskrun.pooling_units(first, parse_recipe("layers=first-last;pool=max"), get_task("sts17"))
    assert [(c, r.layers) for c, r in units] == [("sts17", "first-last")]


# --- bounded memory: pooling streams blocks of sentences -----------------------------------------

def test_streamed_pooling_equals_pooling_the_whole_layer(tiny_store):
    store = hsstore.open(tiny_store)
    rng = np.random.default_rng(0)
    # one sentence a read (blocks shorter than a sentence), a few sentences, thousands, all at once
    for name, blocks in (("mine", (1, 7)), ("wikitext2", (50000, 10 ** 9))):
        corpus = store.corpus(name)
        weights = (rng.random(corpus.n_tokens) * (rng.random(corpus.n_tokens) > 0.2)).astype(np.float32)
        whole = np.stack([corpus.layer(1), corpus.layer(2)])
        for mode in ("mean", "max", "first", "last"):
            expected = pool_states(whole, [0.3, 0.7], corpus.offsets, weights, mode)
            for block in blocks:
                states = pooling.StoredStates(corpus, [1, 2], block_tokens=block)
                got = pooling.pool_streamed(states, [0.3, 0.7], corpus.offsets, weights, mode)
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} {mode} block {block}")


def test_eval_and_the_avg_table_never_read_a_whole_layer(tiny_store, monkeypatch):
    """Every read of stored states is a block of at most BLOCK_CHUNKS chunks (or one sentence)."""
    store = hsstore.open(tiny_store)
    chunk = int(store.settings["chunk_tokens"])
    monkeypatch.setattr(pooling, "BLOCK_CHUNKS", 1)
    reads = []
    real = hsstore.Corpus.layer_rows

    def layer_rows(self, layer, start, stop):
        reads.append(stop - start)
        return real(self, layer, start, stop)

    monkeypatch.setattr(hsstore.Corpus, "layer_rows", layer_rows)
    monkeypatch.setattr(hsstore.Corpus, "layer", lambda *a, **k: pytest.fail("a whole layer was read"))
    wiki = store.corpus("wikitext2")
    assert wiki.n_tokens > 2 * chunk  # the corpus spans several blocks
    engine = Engine(store, disk_cache=False)
    for recipe in ("layers=all;pool=mean", "layers=first-last;pool=max", "view=avg@wikitext2;layers=last"):
        engine.embed("wikitext2", parse_recipe(recipe))
    longest = int(np.diff(wiki.offsets).max())
    assert reads and max(reads) <= max(chunk, longest) and len(reads) > 2 * len(store.layers)
