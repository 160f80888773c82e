"""The registry of task families: each family declared once, and everything else reads it.

A family (STS, classification, clustering, ...) is one ``Family`` in its own module of
``analysis/evaluation/families/``, found there when the registry is first used. It declares:

- its evaluator: a class built with ``(task, corpus, **options)`` that maps the task's texts to
  sentence ids once and is then called with the corpus's sentence matrix, returning scores with a
  ``main_score`` (x100); given as the class or as ``"module:Class"`` where importing the class would
  slow ``hs --help`` (a solver that compiles numba kernels);
- the protocol options it takes (``Option``: hs eval's flag, default, choices), which ``hs eval``
  turns into flags and results files record;
- how its figures are named in MTEB's layout (``mteb_keys``, and ``mteb_protocol``: the options
  under which the figures are MTEB's own protocol);
- how reports group and label it (``group``, ``measure``), and where it stands in tables (``position``);
- the libraries whose thread pools its evaluator uses (loaded before the thread limits are set);
- whether its tasks' queries are embedded apart (``query_side``: retrieval, where a prompt template is
  the queries').

The engine, the thread and Dask runners, results files, the report loader and the CLI read these
declarations through registry.py; adding a family is one module in ``families/``, its tasks in the
task registry (hsstore/tasks/registry.py) and its test.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsstore.tasks import Task

from .diagnostics import diagnose


class Evaluator:
    """What every family's evaluator offers besides being called with a sentence matrix."""

    cost: float = 0.0  # a rough relative cost of one evaluation, so the costliest start first

    def __call__(self, X: np.ndarray) -> dict:
        raise NotImplementedError

    def diagnostics(self, X: np.ndarray) -> dict:
        """Isotropy and uniformity of the sentence vectors this task scores (and whatever else the
        family can measure on them)."""
        return diagnose(X)


@dataclass(frozen=True)
class Option:
    """A protocol option of a family's evaluator: ``hs eval``'s flag, and the key results files record."""
    name: str  # the key in the protocol options (and results files' ``protocol``)
    flag: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None  # for whole-number options
    param: str = ""  # the evaluator's keyword argument, if it is not ``name``

    @property
    def keyword(self) -> str:
        return self.param or self.name


@dataclass(frozen=True, eq=False)
class Family:
    name: str
    description: str
    evaluator: Any  # a class, or "module:Class" imported on first use
    measure: str  # what the main score is, for report headings
    short_measure: str  # the same in a few words, for axis labels
    position: int  # order in tables and reports
    group: str = ""  # the report section it is shown in (default: its own)
    options: tuple[Option, ...] = ()
    mteb_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # hs score key -> MTEB's names for it
    mteb_main: str = ""  # the MTEB key that is MTEB's main score ("": hs's main score)
    mteb_protocol: dict[str, Any] = field(default_factory=dict)  # options under which the figures are MTEB's
    libraries: tuple[str, ...] = ()  # modules to load before thread limits are set (runners/threads.py)
    # its evaluator takes the queries' matrix on its own (``queries=``), so that a recipe's prompt template
    # embeds a task's queries only (runners/engine.py: Engine.inputs)
    query_side: bool = False

    @property
    def report_group(self) -> str:
        return self.group or self.name

    def evaluator_class(self):
        if not isinstance(self.evaluator, str):
            return self.evaluator
        module, _, name = self.evaluator.partition(":")
        return getattr(importlib.import_module(module), name)

    def build(self, task: Task, corpus, options: dict) -> Evaluator:
        """The task's evaluator under the protocol ``options`` (a missing option takes its default)."""
        kwargs = {o.keyword: options.get(o.name, o.default) for o in self.options}
        return self.evaluator_class()(task, corpus, **kwargs)
