"""The package layout's own rules: keys that follow the code wherever it moves, and the family registry."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis import sourcehash
from analysis.embedding import diskcache
from analysis.evaluation.registry import families, family_of, options
from analysis.runners import study_run
from cli.main import hs
from hsstore.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the two packages whose source keys computed numbers."""
    root = tmp_path_factory.mktemp("tree")
    for package in ("hsstore", "analysis"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("packages, leave_out, outside", [
    (diskcache.CODE_PACKAGES, diskcache.NOT_CACHED, "hsstore/dump/run.py"),
    (study_run.CODE_PACKAGES, study_run.NOT_NUMBERS, "analysis/report/figures.py"),
], ids=["pooled-matrix cache", "study run key"])
def test_every_module_that_computes_keyed_numbers_changes_its_key(tree, packages, leave_out, outside):
    keyed = sourcehash.modules(packages, leave_out, root=tree)
    names = {name for name, _ in keyed}
    # the walk reaches every depth: a module of each sub-package, and the family declarations
    assert {"hsstore.store.reader", "hsstore.format.chunks", "analysis.embedding.pooling",
            "analysis.recipes.steps"} <= names
    before = sourcehash.digest(packages, leave_out, root=tree)
    for _, path in keyed:
        source = path.read_bytes()
        path.write_bytes(source + b"\n# a change\n")
        try:
            assert sourcehash.digest(packages, leave_out, root=tree) != before, path
        finally:
            path.write_bytes(source)
    path = tree / outside  # code that computes none of these numbers leaves the key alone
    source = path.read_bytes()
    path.write_bytes(source + b"\n# a change\n")
    try:
        assert sourcehash.digest(packages, leave_out, root=tree) == before
    finally:
        path.write_bytes(source)


def test_a_new_module_changes_the_key_and_a_missing_package_is_an_error(tree):
    before = sourcehash.digest(diskcache.CODE_PACKAGES, diskcache.NOT_CACHED, root=tree)
    added = tree / "analysis" / "embedding" / "new_step.py"
    added.write_text("X = 1\n")
    try:
        assert sourcehash.digest(diskcache.CODE_PACKAGES, diskcache.NOT_CACHED, root=tree) != before
    finally:
        added.unlink()
    with pytest.raises(FileNotFoundError):
        sourcehash.digest(("analysis.no_such_room",), root=tree)


def test_every_task_has_a_registered_family_and_every_family_builds():
    for task in TASKS.values():
        if task.family != "corpus":
            assert family_of(task).name == task.family
    for family in families().values():
        assert callable(family.evaluator_class())
        assert family.report_group in families()


def test_hs_eval_and_hs_tasks_show_what_the_families_declare():
    runner = CliRunner()
    help_text = runner.invoke(hs, ["eval", "--help"], terminal_width=200).output
    for option in options().values():
        assert option.flag in help_text
    listing = runner.invoke(hs, ["tasks", "--help"], terminal_width=400).output
    for name in families():
        assert name in listing
