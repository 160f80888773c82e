"""What a reader sees: tables and figures that show what was run, results in pandas, xarray, MTEB and
HDF5 as those tools load them, and a command line whose help, quiet flag and exit statuses match the
README. Each check reads the output with the other tool, or recomputes it independently."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.recipes.recipe import parse_recipe
from analysis.results.result import Result
from cli.main import hs
from hsstore.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


# ---- tables and the heatmap --------------------------------------------------------------------

def test_one_recipe_table_shows_every_axis_away_from_its_default(tiny_store):
    recipe = "layers=first-last;drop=special;weights=idf@wikitext2;post=zscore+l2"
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-r", recipe, "-q")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["layers", "drop", "weights", "post", "sts17"]
    assert row.split()[:4] == ["first-last", "special", "idf@wikitext2", "zscore+l2"]
    from analysis.results.table import shown_axes

    assert shown_axes([parse_recipe("layers=last;pool=mean;post=l2")]) == ["post"]  # what -r model is for MiniLM
    assert shown_axes([parse_recipe("")]) == ["layers", "pool"]


def _fake(scores: dict) -> list[Result]:
    """Results of STS tasks with the given main scores (recipe text, task) -> score x100."""
    return [Result(parse_recipe(r), get_task(t), {"main_score": v, "spearman_all": v, "pearson_all": v}, 0.1)
            for (r, t), v in scores.items()]


def test_heatmap_scales_colours_per_column_and_draws_the_average_apart():
    pytest.importorskip("matplotlib")
    from analysis.results.table import heatmap, table

    rng = np.random.default_rng(0)
    recipes, tasks = ["", "pool=max", "layers=first-last", "post=whiten@wikitext2"], ["sts12", "stsb", "sickr"]
    scores = {(r, t): float(rng.uniform(60, 85)) for r in recipes for t in tasks}
    scores[("pool=max", "sickr")] = 5.0  # an outlier in one column
    results = _fake(scores)
    fig = heatmap(results)
    tasks_ax, avg_ax = fig.axes[0], fig.axes[1]
    grid = np.array([[scores[(r, t)] for t in tasks] for r in recipes])
    low, high = grid.min(axis=0), grid.max(axis=0)
    np.testing.assert_allclose(tasks_ax.images[0].get_array(), (grid - low) / (high - low))  # per column
    assert [t.get_text() for t in tasks_ax.get_xticklabels()] == tasks
    assert [t.get_text() for t in avg_ax.get_xticklabels()] == ["avg"]  # a panel of its own
    avg = grid.mean(axis=1)
    assert [t.get_text() for t in avg_ax.texts] == [f"{v:.2f}" for v in avg]
    cells = [t.get_text() for t in tasks_ax.texts]
    rows = [ln.split()[-4:-1] for ln in table(results).splitlines()[1:]]  # the table's two decimals
    assert cells == [c for r in rows for c in r]
    assert "x100" in fig._suptitle.get_text() and "per column" in fig._suptitle.get_text()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_keeps_title_and_colour_bar_label_inside_the_file(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from analysis.results.table import heatmap, plot

    results = _fake({(r, t): 70.0 + i for i, (r, t) in enumerate(
        (r, t) for r in ("", "layers=first-last;drop=special;weights=idf@wikitext2;post=zscore@wikitext2")
        for t in ("sts12", "stsb"))})
    plot(results, tmp_path / "h.png")
    fig = heatmap(results)
    renderer = fig.canvas.get_renderer()
    union = fig.get_tightbbox(renderer)  # in inches: everything drawn, title and colour-bar label included
    height, width = imread(tmp_path / "h.png").shape[:2]
    assert width >= union.width * 120 - 2 and height >= union.height * 120 - 2


# ---- CSV, pandas, reprs --------------------------------------------------------------------------

def test_csv_has_the_diagnostics_of_the_json(tiny_store, tmp_path):
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-t", "biosses", "--pool", "mean", "--pool", "max",
                         "--diagnostics", "--csv", "-", "--json", tmp_path / "r.json", "-q")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    records = json.loads((tmp_path / "r.json").read_text())
    assert len(rows) == len(records) == 4
    for row, rec in zip(rows, records):
        assert row["recipe"] == rec["recipe"] and row["task"] == rec["hs_task"]
        for name in ("isotropy", "uniformity", "avg_cosine", "alignment"):
            assert float(row[name]) == pytest.approx(rec["diagnostics"][name], rel=1e-5)


def test_results_and_json_files_load_into_the_same_frame(tiny_store, tmp_path):
    pd = pytest.importorskip("pandas")
    from analysis.report import read_frame
    from analysis.runners.engine import Engine

    recipes = ["layers=first-last", "pool=max;post=l2"]
    code, _, err = run("eval", tiny_store, "-t", "sts17", "-t", "biosses", *sum((["-r", r] for r in recipes), []),
                       "--diagnostics", "--json", tmp_path / "r.json", "-q")
    assert code == 0, err
    store = hsstore.open(tiny_store)
    results = Engine(store, disk_cache=False).run([get_task("sts17"), get_task("biosses")],
                                                  [parse_recipe(r) for r in recipes], diagnostics=True,
                                                  progress=False)
    mine, loaded = results.to_frame(), read_frame(tmp_path / "r.json")
    assert list(mine.columns) == list(loaded.columns)
    assert {"view", "layers", "pool", "post", "isotropy"} <= set(mine.columns)
    assert len(mine) == 4 and mine["model"].iloc[0] == store.model["name"] and mine["store"].iloc[0] == store.identity
    key = ["recipe", "task"]
    a, b = mine.sort_values(key).reset_index(drop=True), loaded.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns=["seconds"]), b.drop(columns=["seconds"]), check_exact=False,
                                  check_dtype=False, rtol=1e-9)
    assert (a["post"] == [parse_recipe(r).fields()["post"] for r in a["recipe"]]).all()
    assert "4 runs" in repr(results) and ".to_frame()" in repr(results)


def test_reprs_say_what_they_are(tiny_store):
    store = hsstore.open(tiny_store)
    assert repr(store).startswith(f"<hs Store {store.path}: {store.model['name']}, layers 0-3")
    assert "sts17" in repr(store)
    assert repr(store.corpus("sts17")).startswith("<hs Corpus 'sts17' of ") and "stored order" in repr(store.corpus("sts17"))
    recipe = parse_recipe("post=l2")
    assert repr(recipe) == f"<Recipe {recipe}>"
    r = Result(recipe, get_task("stsb"), {"main_score": 82.034}, 0.5)
    assert repr(r).startswith("<Result stsb: main_score 82.03 (x100)")


# ---- xarray, MTEB, HDF5 -------------------------------------------------------------------------

def test_the_whole_store_opens_as_an_xarray_tree(tiny_store):
    xr = pytest.importorskip("xarray")
    tree = xr.open_datatree(tiny_store, engine="zarr", consolidated=False)
    store = hsstore.open(tiny_store)
    statics = tree["statics"].to_dataset()
    assert statics["input_embeddings"].dims == ("vocab", "feature")
    np.testing.assert_array_equal(statics["input_embeddings"].values, store.input_embeddings())
    corpus = tree["corpora/sts17"].to_dataset()
    assert corpus["hidden"].dims == ("layer", "token", "feature") and list(corpus["layer"].values) == store.layers
    np.testing.assert_array_equal(corpus["hidden"].sel(layer=2).values, store.corpus("sts17").layer(2))
    assert sorted(tree["corpora"].children) == sorted(store.all_corpora)


def test_model_meta_is_mtebs_and_records_the_recipe(tiny_store, tmp_path):
    pytest.importorskip("mteb")
    from mteb.models import ModelMeta

    recipe = "layers=first-last;combine=concat;post=zscore"
    code, _, err = run("eval", tiny_store, "-t", "sts17", "-r", recipe, "--mteb-dir", tmp_path, "-q")
    assert code == 0, err
    import mteb

    (model_result,) = mteb.ResultCache(tmp_path).load_results(include_remote=False).model_results  # mteb files it
    assert [t.task_name for t in model_result.task_results] == ["STS17"]
    (meta_path,) = tmp_path.glob("results/*/*/model_meta.json")
    meta = json.loads(meta_path.read_text())
    ModelMeta.model_validate(meta)  # MTEB's own model, which forbids unknown fields
    store = hsstore.open(tiny_store)
    assert meta["embed_dim"] == 2 * store.hidden_size  # two layers concatenated
    assert meta["loader_kwargs"]["hs_recipe"] == str(parse_recipe(recipe))
    assert meta["adapted_from"] is None and meta["reference"] is None  # a local folder names no published model
    task = json.loads(next(meta_path.parent.glob("STS17.json")).read_text())
    assert task["mteb_version"] and task["hs_recipe"] == str(parse_recipe(recipe))


def test_short_names_refer_to_their_published_models():
    from hsstore.dump.model import SHORT_NAMES
    from hsstore.published import HUB_NAMES, hub_name

    assert set(HUB_NAMES) == set(SHORT_NAMES)
    assert hub_name({"name": "minilm", "path": "/site-packages/x"}) == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_name({"name": "bert-base-uncased", "revision": "86b5e09"}) == "bert-base-uncased"
    assert hub_name({"name": "/models/mine", "revision": None}) is None


def test_hdf5_export_has_readable_attributes_and_sentence_lengths(tiny_store, tmp_path):
    import h5py

    out = tmp_path / "s.h5"
    code, stdout, err = run("export", tiny_store, out, "--corpus", "sts17", "-q")
    assert code == 0 and stdout == "" and err == "", err  # -q: not even the 'wrote' line
    store = hsstore.open(tiny_store)
    corpus = store.corpus("sts17")
    with h5py.File(out) as h5:
        assert h5.attrs["model.name"] == store.model["name"] and h5.attrs["identity"] == store.identity
        assert list(h5.attrs["settings.layers"]) == store.settings["layers"]
        g = h5["corpora/sts17"]
        assert g.attrs["n_sentences"] == corpus.n_sentences and g.attrs["source.task"] == "sts17"
        np.testing.assert_array_equal(g["sentence_length"][:], np.diff(corpus.offsets))
        assert g["sentence_length"].dims[0].label == "sentence"
    exported = hsstore.open(out)
    assert exported.attrs == store.attrs and exported.corpus("sts17").attrs == corpus.attrs  # read back exactly


# ---- the command line ----------------------------------------------------------------------------

def test_missing_store_or_corpus_exits_1_as_the_readme_says(tiny_store, tmp_path):
    for args in (("info", tmp_path / "nothing"), ("show", tiny_store, "nosuch", "0"),
                 ("eval", tmp_path / "nothing", "-t", "sts17"), ("export", tiny_store, tmp_path / "x.h5", "-c", "nosuch")):
        code, _, err = run(*args)
        assert code == 1 and err.startswith("hs: error: ") and err.count("\n") == 1, (args, err)
    code, _, err = run("show", tiny_store, "sts17", "100000")  # a usage error
    assert code == 2 and "give an index from 0 to" in err
    readme = (ROOT / "README.md").read_text()
    assert "status 2 (a usage error) or 1 (a missing store or corpus" in readme


@pytest.mark.parametrize("command", ["info", "show", "steps", "tasks", "export", "eval", "dump", "report", "verify"])
def test_help_teaches_with_examples(command):
    code, out, _ = run(command, "--help")
    assert code == 0
    examples = out.split("Examples:", 1)[1].split("Options:", 1)[0]
    lines = [ln.strip() for ln in examples.splitlines() if ln.strip()]
    assert len(lines) >= 2 and all(ln.startswith(("hs ", "CUDA_", "wait;", "--")) for ln in lines), lines


def test_show_says_indexes_are_in_stored_order(tiny_store):
    store = hsstore.open(tiny_store)
    texts = store.corpus("mine").texts
    code, out, _ = run("show", tiny_store, "mine", "--", "-1")
    assert code == 0
    assert out.splitlines()[0] == f"mine[{len(texts) - 1}] (of {len(texts)}, in stored order: by token count): {texts[-1]}"
    lengths = [len(store.corpus("mine").tokens(i)) for i in range(len(texts))]
    assert lengths == sorted(lengths)


def test_quiet_silences_informational_lines(tiny_store, tiny_model, tmp_path):
    code, out, err = run("eval", tiny_store, "-t", "sts17", "--json", tmp_path / "r.json", "--plot", tmp_path / "p.png",
                         "-q")
    assert code == 0 and "wrote" not in err and err.startswith("recipe: ") and err.count("\n") == 1, err
    code, out, err = run("eval", tiny_store, "-t", "sts17", "--json", tmp_path / "r.json")
    assert code == 0 and f"wrote {tmp_path / 'r.json'}" in err
    code, out, err = run("dump", "--model", tiny_model, "--task", "biosses", "--out", tmp_path / "s", "-q")
    assert code == 0 and out == "" and err == "", (out, err)


def test_a_degenerate_whitening_is_a_warning(tiny_store):
    from analysis.embedding.post import Whiten

    rng = np.random.default_rng(0)
    assert Whiten().fit(rng.standard_normal((40, 32))).warning_ is None
    w = Whiten().fit(rng.standard_normal((10, 32)))
    assert "10 rows" in w.warning_ and "whiten:k=9" in w.warning_
    assert Whiten(k=9).fit(rng.standard_normal((10, 32))).warning_ is None
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-r", "post=whiten@mine", "--json", "-", "-q")
    assert code == 0
    (warning,) = [ln for ln in err.splitlines() if ln.startswith("hs: warning: ")]
    assert "post=whiten@mine fitted on mine" in warning and "6 rows" in warning
    assert json.loads(out)[0]["warnings"] == [warning.removeprefix("hs: warning: ")]
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-r", "post=whiten@wikitext2", "-q")
    assert code == 0 and "warning" not in err


# ---- the report's figures ------------------------------------------------------------------------

def test_post_figure_splits_effects_of_opposite_sign(tmp_path):
    pytest.importorskip("matplotlib")
    from types import SimpleNamespace

    from analysis.report import figures, write_report
    from analysis.report.load import load
    from analysis.results.records import records

    effect = {"ctx": -1.0, "re": 16.0, "input": 16.0, "avg": -15.0}  # the case: one mean would be ~+4
    scores = {}
    for t, task in enumerate(("stsb", "sts16")):
        for view, delta in effect.items():
            base = 50.0 + 3 * t + len(view)
            scores[(f"view={view}", task)] = base
            scores[(f"view={view};post=whiten", task)] = base + delta
    store = SimpleNamespace(path=Path("/s"), identity="abc", model={"name": "m"})
    (tmp_path / "r.json").write_text(json.dumps(records(_fake({k: v for k, v in scores.items()}), store)))
    runs = load([tmp_path / "r.json"])
    drawn = figures.post_figure(runs, "m")
    assert isinstance(drawn, figures.Drawn) and "by view" in drawn.figure._suptitle.get_text()
    (ax,) = drawn.figure.axes
    heights = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    assert {k: v[0] for k, v in heights.items()} == pytest.approx({f"view={k}": v for k, v in effect.items()})
    figures.pyplot().close(drawn.figure)
    write_report([tmp_path / "r.json"], tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "### post by view" in text and "| `whiten` | `view=avg` | -15.00 (n=2) |" in text


def test_diagnostics_figure_tells_recipes_apart():
    pytest.importorskip("matplotlib")
    from analysis.report import figures
    from analysis.report.load import Run

    runs = [Run(task, "sts", parse_recipe(r), 50.0 + i, "abc", "m", "/s", diagnostics={"isotropy": 0.5 + i / 20})
            for i, r in enumerate(["", "post=whiten@wikitext2", "layers=first-last"]) for task in ("stsb", "sts16")]
    drawn = figures.diagnostics_figure(runs, "m")
    labels = [t.get_text() for t in drawn.figure.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["layers=last post=none", "layers=last post=whiten@wikitext2", "layers=first-last post=none"]
    assert labels[3:] == ["task sts16", "task stsb"]  # the task registry's order
    assert "unit" in drawn.figure.axes[0].get_xlabel()
    figures.pyplot().close(drawn.figure)
