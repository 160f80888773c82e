"""What one evaluation returns: the recipe, the task, its scores (x100, with ``main_score``), its time
and, when asked for, diagnostics of the sentence vectors; warnings about how its vectors were made."""
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
    warnings: tuple[str, ...] = ()  # what the user must know about these numbers (a degenerate whitening)
    dim: int | None = None  # the sentence vectors' dimension

    @property
    def main_score(self) -> float:
        return float(self.scores["main_score"])

    def __repr__(self) -> str:
        diag = f", {len(self.diagnostics)} diagnostics" if self.diagnostics else ""
        return (f"<Result {self.task.id}: main_score {self.main_score:.2f} (x100) in {self.seconds:.2f} s{diag}; "
                f"recipe {self.recipe}>")
