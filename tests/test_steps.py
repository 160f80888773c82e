"""The step registry drives parsing, errors, `hs steps`, `hs eval --help` and docs/recipes.md."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analysis.recipes import steps
from analysis.recipes.recipe import parse_recipe
from cli.main import hs
from hsstore import HsError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def test_docs_table_is_the_registry():
    text = DOCS.read_text()
    block = re.search(r"<!-- steps: begin.*?-->\n(.*?)\n<!-- steps: end -->", text, re.S)
    assert block, "docs/recipes.md lacks the generated steps table"
    assert block.group(1).strip() == steps.table_markdown().strip(), "run `hs steps --markdown` into docs/recipes.md"


def every_step():
    for axis in steps.AXIS_NAMES:
        for name in [*steps.steps(axis), *steps.aliases(axis)]:
            yield axis, name


@pytest.mark.parametrize("axis,name", list(every_step()))
def test_every_step_parses_from_a_recipe(axis, name):
    recipe = parse_recipe(f"view=input>{name}" if axis == "table" else f"{axis}={name}")
    value = recipe.view if axis == "table" else getattr(recipe, axis)
    step = value[0].table[0] if axis == "table" else value[0].step if axis == "view" else \
        value[0] if axis in ("drop", "post") else value
    assert step.cls is steps.lookup(axis, name)
    assert parse_recipe(str(recipe)) == recipe


def test_every_step_runs_from_the_cli(tiny_store, tmp_path, monkeypatch):
    from analysis.embedding import views

    words = ["the", "a", "is", "man", "."]
    np.save(tmp_path / "glove_6B_50d_emb.npy", np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    (tmp_path / "glove_6B_index.txt").write_text("\n".join(words))
    monkeypatch.setattr(views.Glove, "root", str(tmp_path))
    args = []
    for axis, name in every_step():
        if axis == "view" and name == "glove":
            args += ["-r", "view=glove;pool=mean;drop=none"]
        elif axis in ("drop", "weights") and name == "none":
            continue
        elif (axis, name) in (("view", "prompt"), ("pool", "mask"), ("weights", "ditto")):
            continue  # need a templated or --attention-diagonals dump: tests/test_templates.py runs them
        elif (axis, name) in (("view", "alone"), ("view", "b2s")):
            continue  # need hs dump --vocabulary-states or hs b2s: tests/test_static_tokens.py runs them
        elif axis == "table":
            args += ["-r", f"view=input>{name}"]
        else:
            args += ["-r", f"{axis}={name}"]
    result = CliRunner().invoke(hs, ["eval", str(tiny_store), "-t", "sts17", "-q", *args])
    assert result.exit_code == 0, result.output
    rows = [ln for ln in result.output.splitlines()[1:] if ln.strip()]
    assert len(rows) == len({parse_recipe(a) for a in args[1::2]})  # aliases give the same recipe, shown once
    assert all(np.isfinite(float(ln.split()[-1])) for ln in rows)


@pytest.mark.parametrize("bad,suggestion", [
    ("pool=meen", "'mean'"), ("post=whitten", "'whiten'"), ("view=avgg", "'avg'"), ("drop=specal", "'special'"),
    ("weights=idff", "'idf'"), ("post=abtt:dd=2", "'d'"), ("view=re:sed=1", "'seed'"), ("pol=mean", "'pool'"),
    ("post=whiten:mode=zcaa", "'zca'"),
])
def test_misspelt_names_get_a_suggestion(bad, suggestion):
    with pytest.raises(HsError, match=f"did you mean {suggestion}"):
        parse_recipe(bad)


@pytest.mark.parametrize("bad,message", [
    ("view=re:dim=0", "out of range"), ("post=pca:k=-1", "out of range"), ("weights=sif:a=-1", "out of range"),
    ("post=l2@wikitext2", "takes no @REF"), ("view=ctx*x", "cannot read weight"), ("view=ctx*0+avg*0", "every weight 0"),
    ("view=avg:layers=x", "cannot read layer"),
])
def test_bad_parameters(bad, message):
    with pytest.raises(HsError, match=message):
        parse_recipe(bad)


def test_cli_listing_help_and_errors(tiny_store):
    runner = CliRunner()
    listing = runner.invoke(hs, ["steps"]).output
    helptext = runner.invoke(hs, ["eval", "--help"]).output
    flat = " ".join(helptext.split())
    for axis, name in every_step():
        assert name in listing
        if name in steps.steps(axis):
            assert name in flat.replace("- ", "-")
    result = runner.invoke(hs, ["eval", str(tiny_store), "-t", "sts17", "--pool", "maxx"])
    assert result.exit_code == 2 and "did you mean 'max'" in result.output and "Traceback" not in result.output
