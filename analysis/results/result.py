"""What one evaluation returns: the recipe, the task, its scores (x100, with ``main_score``), its time
and, when asked for, diagnostics of the sentence vectors."""
from __future__ import annotations

from dataclasses import dataclass, field

from hsstore.tasks import Task

from ..recipes.recipe import Recipe


@dataclass
class Result:
    recipe: Recipe
    task: Task
    scores: dict
    seconds: float
    diagnostics: dict = field(default_factory=dict)

    @property
    def main_score(self) -> float:
        return float(self.scores["main_score"])
