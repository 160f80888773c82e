"""The fast subset of scripts/faults.py: real SIGKILLs (random and at fault points) and the
corruption matrix for `hidden`, each checked against an undisturbed dump."""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import faults  # noqa: E402


def test_fault_drill_subset(tmp_path, tiny_model):
    drill = faults.FaultDrill(tmp_path, tiny_model, faults.make_corpus(tmp_path / "wiki.txt", 400))
    drill.kill_points(["commit:2"])
    drill.random_kills(1, random.Random(0))
    drill.corruption(["hidden"], ["missing", "flipped"])
    outcomes = dict((case, outcome) for case, outcome, _ in drill.rows)
    assert faults.WRONG not in outcomes.values(), drill.rows
    # a dump that finished before its random kill is compared too and adds a row (timing decides)
    assert {c for c in outcomes if c.startswith("random SIGKILL (finished first")} | {
        "kill after commit:2", "random SIGKILL x1"} == {c for c, o in outcomes.items() if o == faults.IDENTICAL}
    damage = [o for c, o in outcomes.items() if c.startswith("hidden chunk")]
    assert damage == [faults.CLEAN] * 4  # every damage to a chunk the recipe reads is an error
