"""Presets (`hs dump --preset`, `hs eval --preset`), the study grid and its resumable results file."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import hsstore
from analysis.runners import study
from analysis.runners.engine import Engine
from analysis.recipes.recipe import parse_recipe
from cli.main import hs
from hsstore.tasks import presets
from hsstore.dump.sources import preset_sources
from hsstore.tasks.presets import DECODER, ENCODER, Preset
from hsstore.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
# a preset of the study's shape on the conftest store's tasks (the grid of the other families differs only
# in having no prompt read-outs, which test_stage1... checks)
TINY = Preset(name="tiny", description="test preset", families={"sts": ("sts17", "biosses")},
              references=("wikitext2",), encoder=replace(ENCODER, templates={"promptbert": ("sts17", "biosses")}),
              decoder=replace(DECODER, templates={"prompteol": ("sts17", "biosses")}))
TINY_ARGS = ("--seeds", "1")


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "tiny", TINY)
    return TINY


@pytest.fixture(scope="module")
def preset_store(tmp_path_factory, tiny_store, tiny_model):
    """The conftest store (sts17, biosses, wikitext2, mine) completed with the tiny preset's corpora."""
    out = tmp_path_factory.mktemp("study") / "store"
    shutil.copytree(tiny_store, out)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(presets.PRESETS, "tiny", TINY)
        code, output = run("dump", "--preset", "tiny", "--model", tiny_model, "--batch-tokens", "1024", "-q",
                           "--out", out)
    assert code == 0, output
    return out


def test_study_preset_declares_the_studys_tasks():
    p = presets.get_preset("study")
    families = {f: [get_task(t).family for t in tasks] for f, tasks in p.families.items()}
    assert len(p.families["sts"]) == 8 and set(families["sts"]) == {"sts"}
    assert len(p.families["clustering"]) == 6 and set(families["clustering"]) == {"clustering"}
    assert len(p.families["classification"]) == 12
    assert set(families["classification"]) <= {"classification", "pair-trained"}
    assert "stackoverflow" in p.families["clustering"]
    assert [get_task(t).family for t in p.references] == ["corpus"]
    assert len(set(p.tasks)) == len(p.tasks) and not set(p.left_out) & set(p.tasks)
    # every corpus once: plain tasks, WikiText-2, and for each templated STS task its variant and empty rows
    for causal, template in ((False, "promptbert"), (True, "prompteol")):
        names = p.corpora(causal)
        assert len(names) == len(set(names)) == 26 + 1 + 2 * 8
        assert [s.name for s in preset_sources("study", causal)] == names
        assert f"stsb~{template}~empty" in names
    # some families only: their tasks, the references, and the templates of their tasks
    assert p.corpora(False, ("clustering",)) == ["wikitext2", *p.families["clustering"]]


def test_dump_preset_equals_the_explicit_commands_and_adds_nothing_twice(preset_store, tiny_store, tiny_model,
                                                                        tmp_path, tiny_preset):
    st = hsstore.open(preset_store)
    assert set(TINY.corpora(False)) <= set(st.all_corpora)
    assert all(st.corpus(n).complete for n in TINY.corpora(False))
    # the corpora the conftest store lacked, dumped with --task and --template: the same fingerprints
    explicit = tmp_path / "explicit"
    shutil.copytree(tiny_store, explicit)
    templated = [a for t in TINY.encoder.templates["promptbert"] for a in ("--task", t)]
    code, output = run("dump", "--model", tiny_model, "--batch-tokens", "1024", "-q", *templated,
                       "--template", "promptbert", "--out", explicit)
    assert code == 0, output
    other = hsstore.open(explicit)
    assert {n: other.corpus(n).fingerprint for n in TINY.corpora(False)} == {n: st.corpus(n).fingerprint
                                                                      for n in TINY.corpora(False)}
    # rerunning the preset on a complete store writes nothing
    before = {p: p.stat().st_mtime_ns for p in preset_store.rglob("*") if p.is_file()}
    code, output = run("dump", "--preset", "tiny", "--model", tiny_model, "--batch-tokens", "1024", "-q",
                       "--out", preset_store)
    assert code == 0, output
    assert {p: p.stat().st_mtime_ns for p in preset_store.rglob("*") if p.is_file()} == before


def test_preset_usage_errors(preset_store, tiny_preset):
    code, output = run("dump", "--preset", "tiny", "--task", "stsb", "--out", preset_store)
    assert code == 2 and "leave out --task" in output
    code, output = run("dump", "--preset", "nope", "--out", preset_store)
    assert code == 2 and "unknown preset 'nope'" in output
    code, output = run("eval", preset_store, "--preset", "tiny", "--layers", "last")
    assert code == 2 and "leave out --layers" in output
    code, output = run("eval", preset_store, "--preset", "study")
    assert code != 0 and "hs dump --model" in output and "--preset study" in output


def test_stage1_varies_one_axis_of_the_base_at_a_time():
    entries = study.stage1("sts", range(7), 6, "promptbert", glove=False, kind=ENCODER)
    base = parse_recipe(study.BASE)
    assert entries[0].recipe == base
    fields = base.fields()
    for e in entries[1:]:
        changed = {k for k, v in e.recipe.fields().items() if v != fields[k]}
        assert len(changed) == 1 or e.axis == "prompt", e
    layers = [e.recipe.layers for e in entries if e.axis == "layers"]
    assert layers == [*map(str, range(7)), "first-last", "emb-last", "all"]
    some = study.stage1("sts", [0, 3, 6], 6, None, glove=False, kind=ENCODER)  # hs dump --layers 0,3,6
    assert [e.recipe.layers for e in some if e.axis == "layers"] == ["0", "3", "6", "emb-last", "0,3,6"]
    views = [e.recipe.fields()["view"] for e in entries if e.axis == "view"]
    assert "glove" not in views and {"re", "input", "avg", "ctx*0.5+avg*0.5"} <= set(views)
    posts = {e.recipe.fields()["post"] for e in entries if e.axis == "post"}
    assert {"quantile", "quantile@wikitext2", "whiten", "whiten@wikitext2", "l2"} <= posts
    assert len([e for e in entries if e.axis == "prompt"]) == 4
    assert [e.recipe.fields()["pool"] for e in entries if e.axis == "pool"] == ["max", "first"]
    assert "special" in [e.recipe.fields()["drop"] for e in entries if e.axis == "drop"]
    decoder = study.stage1("sts", range(7), 6, "prompteol", glove=False, kind=DECODER)
    assert [e.recipe.fields()["pool"] for e in decoder if e.axis == "pool"] == ["max", "last"]
    assert not [e for e in decoder if "special" in e.recipe.fields()["drop"]]  # a decoder may add none
    assert not [e for e in study.stage1("clustering", range(7), 6, None, glove=False, kind=ENCODER)
                if e.axis == "prompt"]
    assert "glove" in [e.recipe.fields()["view"]
                       for e in study.stage1("sts", range(7), 6, None, glove=True, kind=ENCODER)]


def test_stage2_combines_the_best_of_each_axis():
    entries = study.stage1("sts", range(4), 3, "promptbert", glove=True, kind=ENCODER)
    # made-up family means: a known best on each axis
    wanted = {"layers": "first-last", "drop": "punct", "weights": "idf@wikitext2", "post": "whiten@wikitext2"}
    means = {e.recipe: (1.0 if e.recipe.fields()[e.axis] == wanted.get(e.axis) else 0.5) if e.axis in wanted
             else 0.6 for e in entries}
    out = study.stage2("sts", entries, means, "promptbert", glove=True)
    combined = [e.recipe for e in out if e.axis == "combined"]
    assert str(combined[-1]) == ("view=ctx;layers=first-last;combine=mean;pool=mean;drop=punct;"
                                 "weights=idf@wikitext2;post=whiten@wikitext2")
    shaped = {e.recipe.fields()["view"]: e.recipe for e in out if e.axis == "shaped-view"}
    assert shaped["re"].fields()["post"] == "whiten@wikitext2" and shaped["re"].weights == combined[-1].weights
    # RE and Avg. shaped on their own: every weights x post pair (here the combination's own pair is
    # already among the shaped views, so it is not repeated)
    static = [e.recipe.fields() for e in out if e.axis in ("shaped-static", "shaped-view")
              and e.recipe.fields()["view"] in study.SHAPED_VIEWS]
    assert len(static) == len(study.SHAPED_VIEWS) * len(study.SHAPING_WEIGHTS) * len(study.SHAPING_POSTS)
    assert {(f["view"], f["weights"], f["post"]) for f in static} == {
        (v, w, p) for v in study.SHAPED_VIEWS for w in study.SHAPING_WEIGHTS for p in study.SHAPING_POSTS}
    assert all(f["layers"] == "first-last" and f["drop"] == "punct" for f in static)
    prompt = [e.recipe.fields() for e in out if e.axis == "prompt"]
    assert prompt and all(p["post"] == "whiten" for p in prompt)  # fitted on the task: no templated WikiText-2
    # where the base wins an axis, that axis keeps the base's value
    means = {e.recipe: 1.0 if e.axis == "base" else 0.5 for e in entries}
    out = study.stage2("sts", entries, means, None, glove=False)
    assert [e for e in out if e.axis == "combined"] == []  # all equal the base, which stage 1 has
    assert all(e.recipe not in {x.recipe for x in entries} for e in out)


def _scores(records):
    return {(r["recipe"], r["hs_task"]): next(iter(r["scores"].values()))[0]["main_score"] for r in records}


@pytest.fixture(scope="module")
def full_run(preset_store, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(presets.PRESETS, "tiny", TINY)
        out = tmp_path_factory.mktemp("full") / "full.json"
        code, output = run("eval", preset_store, "--preset", "tiny", *TINY_ARGS, "-q", "--json", out)
    assert code == 0, output
    return json.loads(out.read_text()), output


def test_preset_run_records_every_evaluation(full_run, preset_store):
    records, output = full_run
    st = hsstore.open(preset_store)
    grid = {f: study.stage1(f, st.layers, st.n_model_layers, study.family_template(TINY, f, ENCODER), study.glove_available(),
                            ENCODER)
            for f in TINY.families}
    stage1 = {(str(e.recipe), t) for f, tasks in TINY.families.items() for t in tasks for e in grid[f]}
    keys = [(r["recipe"], r["hs_task"]) for r in records]
    assert len(keys) == len(set(keys)) and stage1 <= set(keys)
    assert {r["study"]["stage"] for r in records} == {1, 2}
    assert all(r["protocol"]["classification"] == "probe" and r["protocol"]["seeds"] == 1 for r in records)
    assert all({"isotropy", "uniformity"} <= set(r["diagnostics"]) for r in records)
    assert "total" in output and "best sts" in output and "view glove skipped" in output or study.glove_available()
    # a record's score is what a plain `hs eval` of its recipe gives (independent path: the Engine directly)
    rec = next(r for r in records if r["study"]["stage"] == 2 and r["hs_task"] == "sts17")
    engine = Engine(st, records[0]["protocol"])
    direct = engine.evaluate(get_task("sts17"), parse_recipe(rec["recipe"])).main_score
    assert _scores([rec])[(rec["recipe"], "sts17")] == pytest.approx(direct / 100, abs=1e-9)
    # stage 2 follows the family means of stage 1
    sts = [r for r in records if r["hs_task"] in TINY.families["sts"] and r["study"]["stage"] == 1]
    means = {}
    for r in sts:
        means.setdefault(r["recipe"], []).append(_scores([r])[(r["recipe"], r["hs_task"])])
    best_layers = max([study.BASE] + [r["recipe"] for r in sts if r["study"]["axis"] == "layers"],
                      key=lambda k: sum(means[str(parse_recipe(k))]))
    combined = [r["recipe"] for r in records if r["study"]["axis"] == "combined" and r["hs_task"] == "sts17"]
    assert not combined or parse_recipe(combined[0]).layers == parse_recipe(best_layers).layers


def test_an_interrupted_run_resumes_to_the_same_records(full_run, preset_store, tmp_path, tiny_preset, monkeypatch):
    records, _ = full_run
    out = tmp_path / "resumed.json"
    calls = {"n": 0}
    evaluate = Engine.evaluate

    def interrupted(self, task, recipe, diagnostics=False):
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        return evaluate(self, task, recipe, diagnostics)

    monkeypatch.setattr(Engine, "evaluate", interrupted)
    code, output = run("eval", preset_store, "--preset", "tiny", *TINY_ARGS, "-q", "--json", out, "--jobs", "1")
    assert code != 0
    partial = json.loads(out.read_text())  # valid JSON, holding what finished
    assert 0 < len(partial) < len(records)
    assert set(_scores(partial).items()) <= set(_scores(records).items())
    calls["n"] = -10**9
    counted = {"n": 0}

    def counting(self, task, recipe, diagnostics=False):
        counted["n"] += 1
        return evaluate(self, task, recipe, diagnostics)

    monkeypatch.setattr(Engine, "evaluate", counting)
    code, output = run("eval", preset_store, "--preset", "tiny", *TINY_ARGS, "-q", "--json", out)
    assert code == 0, output
    assert f"resuming with {len(partial)} evaluations" in output
    assert counted["n"] == len(records) - len(partial)  # only what was missing
    resumed = json.loads(out.read_text())
    assert [(r["recipe"], r["hs_task"]) for r in resumed] == [(r["recipe"], r["hs_task"]) for r in records]
    assert _scores(resumed) == _scores(records)


def test_stale_records_are_dropped_never_mixed(full_run, preset_store, tmp_path, tiny_preset):
    records, _ = full_run
    out = tmp_path / "stale.json"
    # records of another protocol (2 k-means seeds) and one forged record with a wrong key
    forged = json.loads(json.dumps(records[0]))
    forged["study"]["key"] = "0" * 16
    out.write_text(json.dumps(records[:5] + [forged]))
    code, output = run("eval", preset_store, "--preset", "tiny", "--seeds", "2", "-q", "--json", out)
    assert code == 0, output
    assert "dropped 6 of 6 records" in output
    new = json.loads(out.read_text())
    assert all(r["protocol"]["seeds"] == 2 for r in new)
    assert {r["study"]["key"] for r in new} != {records[0]["study"]["key"]}
    # an unreadable results file is an error that leaves it alone
    out.write_text("{not json")
    code, output = run("eval", preset_store, "--preset", "tiny", *TINY_ARGS, "-q", "--json", out)
    assert code == 2 and "cannot be read as JSON" in output and out.read_text() == "{not json"


def test_killed_run_resumes(full_run, preset_store, tmp_path):
    """SIGKILL right after the 3rd write of the results file, then the same command again."""
    records, _ = full_run
    out = tmp_path / "killed.json"
    code = ("import sys; from hsstore.tasks import presets; from tests.test_study import TINY; "
            "presets.PRESETS['tiny'] = TINY; from cli.main import hs; sys.argv[0] = 'hs'; hs()")
    args = [sys.executable, "-c", code, "eval", str(preset_store), "--preset", "tiny", *TINY_ARGS, "-q",
            "--json", str(out), "--jobs", "1"]
    env = {**os.environ, "HS_FAULT_KILL_AFTER": "study-results-written:3"}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    partial = json.loads(out.read_text())
    assert 0 < len(partial) < len(records)
    env.pop("HS_FAULT_KILL_AFTER")
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert _scores(json.loads(out.read_text())) == _scores(records)


def _gpu_script(*args, env=None):
    return subprocess.run(["bash", str(ROOT / "scripts" / "study-gpu.sh"), *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True)


def test_gpu_script_arguments_and_dry_run(tmp_path):
    proc = _gpu_script("--dry-run", env={"STUDY_OUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "model: bert-base-uncased"
    store = tmp_path / "study-bert-base-uncased"
    assert f"hs dump --preset study --model bert-base-uncased --device cuda --out {store}" in lines
    assert f"hs eval {store} --preset study --json {store}.json" in lines
    assert f"hs report {store}.json --out {store}-report" in lines
    assert any(ln.startswith("python benchmarks/dump.py --random-bert-base --device cuda --precision fp16")
               for ln in lines)
    proc = _gpu_script("--dry-run", "org/some-model")
    assert "--model org/some-model" in proc.stdout and "runs/study-org-some-model" in proc.stdout
    proc = _gpu_script("--bogus")
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr


def test_gpu_script_needs_the_model_cached_or_the_hub(tmp_path):
    """Offline with an empty Hugging Face cache: a clear message; with the model in the cache: found."""
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    proc = _gpu_script("--check", "org/tiny", env=env)
    assert proc.returncode == 1
    assert "org/tiny is not in the local Hugging Face cache" in proc.stderr and "hub cannot be reached" in proc.stderr
    # the hub's cache layout: refs/main names a snapshot holding the files
    repo = tmp_path / "hf" / "hub" / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    proc = _gpu_script("--check", "org/tiny", env=env)
    assert proc.returncode == 1  # a config without weights is not the model
    (snapshot / "model.safetensors").write_bytes(b"")
    proc = _gpu_script("--check", "org/tiny", env=env)
    assert proc.returncode == 0 and "found in the local Hugging Face cache" in proc.stdout, proc.stderr


def test_a_decoder_gets_the_presets_decoder_grid(tmp_path, tiny_preset):
    """A GPT-2-style decoder (no mask token, no special tokens): the dump takes the decoder's template
    (PromptEOL) and the grid its read-outs (the last token) and no filter of special tokens; --family
    runs part of the grid."""
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "tests"))
    from families import build_family

    model = build_family("gpt2", tmp_path / "gpt2")
    out = tmp_path / "store"
    code, output = run("dump", "--preset", "tiny", "--model", model, "--batch-tokens", "1024", "-q", "--out", out)
    assert code == 0, output
    st = hsstore.open(out)
    assert st.model["causal"] and set(TINY.corpora(True)) <= set(st.corpora) | set(st.all_corpora)
    assert "sts17~prompteol" in st.corpora and "sts17~promptbert" not in st.all_corpora
    code, output = run("eval", out, "--preset", "tiny", "--family", "sts", "--seeds", "1", "-q", "--json",
                       tmp_path / "r.json")
    assert code == 0, output
    recipes = {r["recipe"] for r in json.loads((tmp_path / "r.json").read_text())}
    assert any("pool=last" in r and "view=ctx" in r for r in recipes)
    assert any("prompt:template=prompteol" in r and "drop=template" in r for r in recipes)
    assert not any("special" in r for r in recipes)
    code, output = run("eval", out, "--preset", "tiny", "--family", "clustering")
    assert code == 2 and "has no family clustering" in output
    code, output = run("eval", out, "--family", "sts")
    assert code == 2 and "give --preset too" in output


def test_a_store_without_the_templated_variants_runs_the_grid_without_prompts(tiny_store, tmp_path, tiny_preset):
    """Only templated corpora missing: the grid runs without its prompt read-outs, and says so; a missing
    plain corpus is still refused."""
    st = hsstore.open(tiny_store)
    assert "sts17~promptbert" not in st.all_corpora and {"sts17", "biosses", "wikitext2"} <= set(st.corpora)
    code, output = run("eval", tiny_store, "--preset", "tiny", "--seeds", "1", "-q", "--json", tmp_path / "r.json")
    assert code == 0, output
    assert "warning: sts: prompt read-outs left out" in output and "hs dump --model" in output
    records = json.loads((tmp_path / "r.json").read_text())
    assert records and not any("prompt" in r["recipe"] for r in records)
    assert {r["study"]["stage"] for r in records} == {1, 2}
    with pytest.MonkeyPatch.context() as mp:  # a plain task missing: refused as before
        mp.setitem(presets.PRESETS, "tiny", replace(TINY, families={"sts": ("sts17", "biosses", "stsb")}))
        code, output = run("eval", tiny_store, "--preset", "tiny", "--seeds", "1", "-q")
    assert code != 0 and "lacks" in output and "stsb" in output
