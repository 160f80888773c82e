"""`hs eval` end to end on the tiny model's store: table, JSON, CSV, grids, and clear errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.embedding import post
from analysis.runners.engine import Engine
from analysis.evaluation.sts import STS
from analysis.embedding.pooling import Pooler
from analysis.recipes.recipe import parse_recipe
from cli.main import hs
from hsstore.tasks import get_task


def run(*args):
    result = CliRunner().invoke(hs, list(args))
    return result.exit_code, result.output


def test_grid_table_json_and_csv(tiny_store, tmp_path):
    code, out = run("eval", str(tiny_store), "--task", "sts17", "--task", "biosses", "--layers", "last",
                    "--layers", "first-last", "--pool", "mean", "--pool", "max", "--json", str(tmp_path / "r.json"),
                    "--csv", str(tmp_path / "r.csv"), "-q")
    assert code == 0, out
    header = out.splitlines()[0].split()
    assert header == ["layers", "pool", "sts17", "biosses", "avg"]
    records = json.loads((tmp_path / "r.json").read_text())
    assert len(records) == 8
    rec = records[0]
    assert rec["task_name"] == "STS17" and set(rec["scores"]) == {"test"}
    assert {"main_score", "hf_subset"} <= rec["scores"]["test"][0].keys()
    assert rec["store"]["identity"] == hsstore.open(tiny_store).identity and "numba" in rec["versions"]
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 8
    # the table shows the same numbers as the JSON (x100)
    first = [ln.split() for ln in out.splitlines()[1:] if ln.split()[:2] == ["last", "mean"]][0]
    assert float(first[2]) == pytest.approx(100 * records[0]["scores"]["test"][0]["main_score"], abs=0.006)


def test_post_processing_fitted_on_a_reference_corpus(tiny_store):
    """The engine's whitening fitted on WikiText equals doing it by hand."""
    store = hsstore.open(tiny_store)
    recipe = parse_recipe("layers=last;drop=special;post=whiten@wikitext2+l2")
    result = Engine(store, disk_cache=False).evaluate(get_task("sts17"), recipe)
    pooler = Pooler(store, disk_cache=False)
    bare = parse_recipe("layers=last;drop=special")
    W = post.Whiten().fit(pooler.embed(store.corpus("wikitext2"), bare))
    X = W.transform(pooler.embed(store.corpus("sts17"), bare))
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    expected = STS(get_task("sts17"), store.corpus("sts17"))(X)["main_score"]
    assert result.main_score == pytest.approx(expected, abs=1e-4)


def test_plot_is_a_picture(tiny_store, tmp_path):
    code, out = run("eval", str(tiny_store), "-t", "sts17", "-t", "biosses", "--pool", "mean", "--pool", "max",
                    "--plot", str(tmp_path / "grid.png"), "-q")
    assert code == 0, out
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recipe_strings_and_grid_files(tiny_store, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"pool": ["mean", "cls"], "post": ["none", "zscore", "quantile", "abtt:d=2"]}))
    code, out = run("eval", str(tiny_store), "-t", "sts17", "--grid", str(grid), "-q")
    assert code == 0, out
    assert len(out.strip().splitlines()) == 1 + 8
    lines = tmp_path / "recipes.txt"
    lines.write_text("# two recipes\nlayers=last;weights=idf@wikitext2\nlayers=all;drop=special+freq20;post=whiten:k=8\n")
    code, out = run("eval", str(tiny_store), "-t", "sts17", "--grid", str(lines), "--diagnostics", "-q")
    assert code == 0, out
    assert "isotropy=" in out and "alignment=" in out


@pytest.mark.parametrize("args,message,status", [
    (["-t", "stsb"], "hs dump --model", 1),  # missing data: 1, as README.md says
    (["-t", "nosuch"], "unknown task", 2),  # a usage error: 2
    (["-t", "wikitext2"], "reference corpus", 2),
    (["-t", "sts17", "--layers", "7"], "do not exist", 2),
    (["-t", "sts17", "--recipe", "post=whiten@nosuchcorpus"], "needs corpus 'nosuchcorpus'", 1),
    (["-t", "sts17", "--pool", "median"], "unknown pool", 2),
    (["-t", "sts17", "--post", "abtt:k=2"], "'abtt' has no parameter 'k'; it takes d", 2),
])
def test_bad_recipes_and_tasks_are_one_line_errors(tiny_store, args, message, status):
    code, out = run("eval", str(tiny_store), *args, "-q")
    assert code == status
    assert out.startswith("hs: error:") and message in out and len(out.strip().splitlines()) == 1, out


def test_a_layer_missing_from_the_store(tmp_path, tiny_model, sentences_file):
    out = tmp_path / "s"
    code, text = run("dump", "--model", str(tiny_model), "--task", "sts17", "--layers", "0,last", "--out", str(out), "-q")
    assert code == 0, text
    code, text = run("eval", str(out), "-t", "sts17", "--layers", "first-last", "-q")
    assert code == 2 and "layer 1 is not in store" in text and "--layers all" in text
    code, text = run("eval", str(out), "-t", "sts17", "--layers", "emb-last", "-q")
    assert code == 0, text


def test_diagnostics_use_the_task_sentences_and_pairs(tiny_store):
    from analysis.evaluation.diagnostics import alignment, average_cosine

    store = hsstore.open(tiny_store)
    recipe = parse_recipe("layers=last")
    result = Engine(store, disk_cache=False).evaluate(get_task("sts17"), recipe, diagnostics=True)
    corpus = store.corpus("sts17")
    X = Pooler(store, disk_cache=False).embed(corpus, recipe)
    recs = get_task("sts17").records()
    top = max(r["score"] for r in recs)
    pos = [r for r in recs if r["score"] >= 0.8 * top]
    a, b = corpus.ids_of(r["text"] for r in pos), corpus.ids_of(r["text2"] for r in pos)
    assert result.diagnostics["alignment_pairs"] == len(pos)
    assert result.diagnostics["alignment"] == pytest.approx(alignment(X, a, b))
    used = np.unique(np.concatenate([corpus.ids_of(r["text"] for r in recs), corpus.ids_of(r["text2"] for r in recs)]))
    assert result.diagnostics["avg_cosine"] == pytest.approx(average_cosine(X[used]))
