"""`hs report`: its tables recomputed here from the JSON records (plain Python on the recipe strings,
not the report's code), its figures inspected, and bad input refused in one line."""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from analysis.results.result import Result
from analysis.recipes.recipe import parse_recipe
from analysis.report import figures, write_report
from analysis.report.load import OPTION_KEYS
from analysis.report.load import load as load_runs
from analysis.results.records import records
from cli.main import hs
from hsstore.errors import EnvError
from hsstore.tasks import get_task

FAMILY = {"stsb": "sts", "sts16": "sts", "agnews": "clustering", "tweet": "clustering", "mr": "classification",
          "mrpc": "classification"}
DEFAULT = dict(p.split("=", 1) for p in "view=ctx;layers=last;combine=mean;pool=mean;drop=none;weights=none;post=none"
               .split(";"))


def study_like_recipes() -> list[str]:
    """One axis at a time around the default recipe, as the study preset varies them."""
    axes = {"layers": ["0", "1", "2", "first-last", "emb-last", "all"],
            "view": ["re", "input", "avg", "glove", "ctx*0.8+avg*0.2", "ctx*0.5+avg*0.5"],
            "drop": ["special", "punct", "special+subword"],
            "weights": ["idf", "idf@wikitext2", "sif"],
            "post": ["zscore", "zscore@wikitext2", "quantile", "whiten", "whiten@wikitext2", "abtt", "l2",
                     "whiten@wikitext2+l2"]}
    out = [""] + [f"{k}={v}" for k, vs in axes.items() for v in vs]
    out += [f"layers=first-last;post={p}" for p in ("whiten", "whiten@wikitext2")]  # a second sweep
    return [str(parse_recipe(r)) for r in out]


PROMPTS = ["view=prompt;pool=mask", "view=prompt;pool=mask:denoise=yes", "view=prompt;pool=mean",
           "view=prompt;drop=special+template"]


def fake_store(identity="abc123", name="tiny-bert"):
    return SimpleNamespace(path=Path(f"/stores/{name}"), identity=identity, model={"name": name})


def fake_results(seed=0, diagnostics=True) -> list[Result]:
    """Scores and diagnostics drawn at random, in hs eval's own Result objects."""
    rng = np.random.default_rng(seed)
    out = []
    recipes = study_like_recipes()
    for task in FAMILY:
        for text in recipes + (PROMPTS if FAMILY[task] == "sts" else []):
            if text == recipes[3] and task == "tweet":
                continue  # one recipe misses a clustering task: no clustering mean for it
            main = float(rng.uniform(20, 90))
            key = {"sts": "spearman_all", "clustering": "v_measure"}.get(FAMILY[task], "accuracy")
            scores = {key: main, "main_score": main} | ({"pearson_all": main - 1} if key == "spearman_all" else {})
            diag = {"avg_cosine": float(rng.uniform(0, 1)), "isotropy": float(10 ** rng.uniform(-8, 0)),
                    "uniformity": float(rng.uniform(-4, -1))} if diagnostics else {}
            out.append(Result(parse_recipe(text), get_task(task), scores, 0.1, diag))
    return out


def write_json(path: Path, results, store=None) -> Path:
    path.write_text(json.dumps(records(results, store or fake_store())))
    return path


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.output


# ---- an independent reading of the report and of the records ------------------------------------

def md_tables(text: str) -> dict[str, list[dict]]:
    """Each Markdown table under the heading above it: rows as dicts keyed by the header."""
    tables, heading, lines = {}, None, text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("#").strip()
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, (c.strip() for c in lines[i].strip("|").split("|")))))
                i += 1
            tables[heading] = rows
            continue
        i += 1
    return tables


def flat(path: Path) -> list[dict]:
    """task, family, recipe fields (from the recipe string), score x100 and diagnostics of each record."""
    out = []
    for rec in json.loads(path.read_text()):
        (split,) = rec["scores"].values()
        fields = dict(p.split("=", 1) for p in rec["recipe"].split(";"))
        out.append({"task": rec["hs_task"], "family": FAMILY.get(rec["hs_task"], "sts"), "recipe": rec["recipe"],
                    "fields": fields, "score": 100 * split[0]["main_score"], "diag": rec["diagnostics"]})
    return out


def expected_effects(recs: list[dict], axis: str) -> dict[str, dict[str, list[float]]]:
    """value -> family -> score differences against the default value, the other axes fixed."""
    groups = defaultdict(dict)
    for r in recs:
        rest = tuple(sorted((k, v) for k, v in r["fields"].items() if k != axis))
        groups[(r["task"], rest)][r["fields"][axis]] = r
    out = defaultdict(lambda: defaultdict(list))
    for g in groups.values():
        if DEFAULT[axis] in g:
            for value, r in g.items():
                if value != DEFAULT[axis]:
                    out[value][r["family"]].append(r["score"] - g[DEFAULT[axis]]["score"])
    return out


def delta_cell(deltas: list[float]) -> str:
    return f"{np.mean(deltas):+.2f} (n={len(deltas)})" if deltas else "—"


def check_effect_rows(rows: list[dict], first: str, expected: dict) -> None:
    assert {r[first].strip("`") for r in rows} == set(expected)
    for row in rows:
        by_family = expected[row[first].strip("`")]
        for family in ("sts", "clustering", "classification"):
            if family in row:
                assert row[family] == delta_cell(by_family.get(family, [])), (row, family)
        assert row["all families"] == delta_cell([d for ds in by_family.values() for d in ds])


@pytest.fixture(scope="module")
def study_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    results = write_json(tmp / "study.json", fake_results())
    code, out = run("report", results, "--out", tmp / "out", "--svg")
    assert code == 0, out
    return results, tmp / "out", (tmp / "out" / "report.md").read_text()


def test_per_task_and_family_tables_match_the_records(study_report):
    path, _, text = study_report
    recs, tables = flat(path), md_tables(study_report[2])
    score = {(r["recipe"], r["task"]): r["score"] for r in recs}
    for family, measure in (("sts", "Spearman"), ("clustering", "V-measure"), ("classification", "accuracy")):
        tasks = sorted({r["task"] for r in recs if r["family"] == family})
        rows = next(rows for h, rows in tables.items() if h.startswith(f"{family} (") and measure in h)
        mine = {r["recipe"] for r in recs if r["family"] == family}
        assert len(rows) == len(mine)
        fixed = {k: v for k, v in DEFAULT.items() if k not in rows[0]}
        means = []
        for row in rows:
            recipe = ";".join(f"{k}={row.get(k, fixed.get(k))}" for k in DEFAULT)
            assert recipe in mine
            have = [score[(recipe, t)] for t in tasks if (recipe, t) in score]
            for t in tasks:
                assert row[t] == (f"{score[(recipe, t)]:.2f}" if (recipe, t) in score else "—")
            complete = len(have) == len(tasks)
            assert row["mean"] == (f"{np.mean(have):.2f}" if complete else f"{len(have)}/{len(tasks)} tasks")
            means.append(np.mean(have) if complete else -np.inf)
        assert means == sorted(means, reverse=True)  # best mean first
    # family means: the clustering cell of the recipe that misses tweet says so
    fam = tables["Family means"]
    assert sum(r["clustering (2 tasks)"] == "1/2 tasks" for r in fam) == 1
    assert all(r["classification (2 tasks)"] not in ("", "—") for r in fam if r["view"] != "prompt")


def test_best_recipe_per_family(study_report):
    path, _, text = study_report
    recs = flat(path)
    best = {r["family"]: r for r in md_tables(text)["Best recipe per family"]}
    for family in ("sts", "clustering", "classification"):
        tasks = {r["task"] for r in recs if r["family"] == family}
        by_recipe = defaultdict(dict)
        for r in recs:
            if r["family"] == family:
                by_recipe[r["recipe"]][r["task"]] = r["score"]
        complete = {k: np.mean(list(v.values())) for k, v in by_recipe.items() if set(v) == tasks}
        winner = max(complete, key=complete.get)
        assert best[family]["best recipe"] == f"`{winner}`"
        assert best[family]["mean"] == f"{complete[winner]:.2f}"
        assert best[family]["recipes on all tasks"] == str(len(complete))


@pytest.mark.parametrize("axis", ["layers", "view", "drop", "weights", "post", "pool"])
def test_axis_effects_match_pairs_in_the_records(study_report, axis):
    path, _, text = study_report
    tables = md_tables(text)
    expected = expected_effects(flat(path), axis)
    rows = tables[f"{axis} (baseline `{DEFAULT[axis]}`)"]
    check_effect_rows(rows, axis, expected)


def test_wikitext_and_prompt_effects(study_report):
    path, _, text = study_report
    recs = flat(path)
    tables = md_tables(text)
    score = {(r["recipe"], r["task"]): r for r in recs}
    wiki = defaultdict(lambda: defaultdict(list))
    for r in recs:
        if "@wikitext2" in r["recipe"]:
            other = score.get((r["recipe"].replace("@wikitext2", ""), r["task"]))
            if other:
                axis, step = next((k, v) for k, v in r["fields"].items() if "@wikitext2" in v)
                step = step.replace("@wikitext2", "")
                wiki[f"{axis}={step}: @wikitext2 vs @task"][r["family"]].append(r["score"] - other["score"])
    assert {"weights=idf: @wikitext2 vs @task", "post=whiten: @wikitext2 vs @task"} <= set(wiki)
    check_effect_rows(tables["WikiText-2 (or another corpus) vs the task's own statistics"], "step", wiki)
    prompt = defaultdict(lambda: defaultdict(list))
    for r in recs:
        if r["fields"]["view"] == "prompt":
            f = dict(r["fields"], view="ctx", pool="mean" if r["fields"]["pool"].startswith("mask") else r["fields"]["pool"],
                     drop=r["fields"]["drop"].replace("+template", "") if r["fields"]["drop"] != "template" else "none")
            plain = score[(";".join(f"{k}={v}" for k, v in f.items()), r["task"])]
            label = ";".join(f"{k}={v}" for k, v in r["fields"].items() if f[k] != v)
            prompt[label][r["family"]].append(r["score"] - plain["score"])
    assert len(prompt) == len(PROMPTS)
    check_effect_rows(tables["Prompt read-outs vs the plain recipe"], "read-out", prompt)


def test_diagnostics_table_is_spearman_per_task(study_report):
    path, _, text = study_report
    recs = flat(path)
    rows = {r["task"]: r for r in md_tables(text)["Diagnostics vs score"]}
    for task in FAMILY:
        for d in ("isotropy", "uniformity", "avg_cosine"):
            pts = [(r["diag"][d], r["score"]) for r in recs if r["task"] == task]
            rho = spearmanr(*zip(*pts)).statistic
            assert rows[task][f"rho({d}, score)"] == f"{rho:+.2f} (n={len(pts)})"


def test_every_figure_is_drawn_linked_and_labelled(study_report):
    path, out, text = study_report
    runs = load_runs([path])
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert sorted(linked) == sorted(f"{stem}.png" for stem in figures.FIGURES)
    for stem, (_, draw) in figures.FIGURES.items():
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        drawn = draw(runs, "tiny-bert")
        assert isinstance(drawn, figures.Drawn), stem
        fig = drawn.figure
        assert "tiny-bert" in fig._suptitle.get_text()
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), stem
            assert ax.get_title() or len(fig.axes) == 1, stem  # a lone panel goes by the figure's title
            legend = ax.get_legend()
            assert legend is not None and all(t.get_text() for t in legend.get_texts()), stem
            assert any(m in ax.get_ylabel() for m in ("x100", "points")), stem
        figures.pyplot().close(fig)


def test_layer_figure_draws_the_family_means(study_report):
    path, _, _ = study_report
    recs = flat(path)
    fig = figures.layers_figure(load_runs([path]), "m").figure
    ax = fig.axes[0]  # sts
    assert ax.get_title() == "sts"
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("post=none "))
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    for x, y in zip(line.get_xdata(), line.get_ydata()):
        layer = ticks[int(x)]
        want = np.mean([r["score"] for r in recs if r["family"] == "sts" and r["recipe"] == ";".join(
            f"{k}={layer if k == 'layers' else v}" for k, v in DEFAULT.items())])
        assert y == pytest.approx(want)
    assert ticks[:4] == ["0", "1", "2", "last"]  # single layers in order, sets after
    figures.pyplot().close(fig)


def test_real_hs_eval_output(tiny_store, tmp_path):
    """From hs eval on the tiny store: layers and post sweeps with diagnostics; what was not run is said."""
    code, out = run("eval", tiny_store, "-t", "sts17", "-t", "biosses", "--layers", "1", "--layers", "last",
                    "--layers", "first-last", "--post", "none", "--post", "whiten", "--post", "whiten@wikitext2",
                    "--diagnostics", "--json", tmp_path / "r.json", "-q")
    assert code == 0, out
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "views.png").write_bytes(b"stale")  # an earlier report's figure goes
    code, out = run("report", tmp_path / "r.json", "--out", tmp_path / "out")
    assert code == 0, out
    text = (tmp_path / "out" / "report.md").read_text()
    tables = md_tables(text)
    recs = flat(tmp_path / "r.json")
    for axis in ("layers", "post"):
        check_effect_rows(tables[f"{axis} (baseline `{DEFAULT[axis]}`)"], axis, expected_effects(recs, axis))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "diagnostics.png", "layers.png", "post.png", "wikitext.png"]
    assert "Not drawn: no prompt read-out (view=prompt) in the input." in text
    assert "Not drawn: no two views were run" in text


def test_no_diagnostics_no_figure(tmp_path):
    path = write_json(tmp_path / "r.json", fake_results(diagnostics=False))
    written = write_report([path], tmp_path / "out")
    assert not (tmp_path / "out" / "diagnostics.png").exists() and tmp_path / "out" / "layers.png" in written
    assert "Not drawn: the results hold no diagnostics (run hs eval with --diagnostics)." in written[0].read_text()


def test_mixed_stores_only_when_asked(tmp_path):
    a = write_json(tmp_path / "a.json", fake_results(0), fake_store("id-a", "model-a"))
    b = write_json(tmp_path / "b.json", fake_results(1), fake_store("id-b", "model-b"))
    code, out = run("report", a, b, "--out", tmp_path / "out")
    assert code == 2 and out.count("\n") == 1 and "2 stores" in out and "--mixed-stores" in out
    assert not (tmp_path / "out").exists()
    code, out = run("report", a, b, "--out", tmp_path / "out", "--mixed-stores")
    assert code == 0, out
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Store 1: model-a" in text and "## Store 2: model-b" in text
    assert (tmp_path / "out" / "store1-layers.png").exists() and (tmp_path / "out" / "store2-layers.png").exists()


def test_the_same_results_twice_count_once(tmp_path):
    a = write_json(tmp_path / "a.json", fake_results(0))
    b = write_json(tmp_path / "b.json", fake_results(0))
    assert len(load_runs([a, b])) == len(load_runs([a]))


def bad(tmp_path, content) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def good_record():
    return records(fake_results()[:1], fake_store())[0]


@pytest.mark.parametrize("content, message", [
    ("not json", "is not an hs results file (not JSON"),
    ({"a": 1}, "expected a non-empty JSON array"),
    ([], "expected a non-empty JSON array"),
    ([{"task_name": "x"}], "has no 'hs_task', 'scores', 'recipe', 'store'"),
    ([good_record() | {"hs_task": "nosuchtask"}], "'nosuchtask' is not an evaluation task"),
    ([good_record() | {"hs_task": "wikitext2"}], "'wikitext2' is not an evaluation task"),
    ([good_record() | {"recipe": "pool=meen"}], "cannot read its recipe: unknown pooling 'meen'"),
    ([good_record() | {"scores": {"test": [{"main_score": 82.03}]}}], "main_score 82.03 is not a number on the 0-1"),
    ([good_record() | {"store": {"path": "x"}}], "'store' lacks identity and model"),
])
def test_bad_files_get_one_line(tmp_path, content, message):
    code, out = run("report", bad(tmp_path, content), "--out", tmp_path / "out")
    assert code == 2 and out.startswith("hs: error: ") and out.count("\n") == 1, out
    assert message in out


def test_conflicts_get_one_line(tmp_path):
    rec = good_record()
    changed = json.loads(json.dumps(rec))
    changed["scores"]["test"][0]["main_score"] += 0.01
    code, out = run("report", bad(tmp_path, [rec, changed]), "--out", tmp_path / "out")
    assert code == 2 and out.count("\n") == 1 and "different scores" in out and "keep one of them" in out
    for key in OPTION_KEYS:
        code, out = run("report", bad(tmp_path, [rec | {key: {"seeds": 5}}, rec | {key: {"seeds": 1}}]),
                        "--out", tmp_path / "out")
        assert code == 2 and out.count("\n") == 1 and "different protocol options" in out
    code, out = run("report", tmp_path / "missing.json", "--out", tmp_path / "out")
    assert code != 0 and out.count("\n") == 1 and "does not exist" in out


def test_without_matplotlib_a_one_line_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(EnvError, match=r"pip install matplotlib"):
        write_report([write_json(tmp_path / "r.json", fake_results())], tmp_path / "out")
    assert not (tmp_path / "out").exists()
