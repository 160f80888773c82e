"""Evaluate recipes on tasks from a store: pool, post-process (fitted on a named reference), score."""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from hsstore.errors import HsError, StoreError
from hsstore.format.layout import KIND_SPECIAL
from hsstore.store import Store
from hsstore.tasks import TASKS, Task, get_task
from hsstore.tasks.templates import SEPARATOR
from hsstore.tasks.usertask import UserTask

from ..embedding import post as post_mod
from ..embedding.pooling import Pooler
from ..embedding.prompts import query_template
from ..embedding.tokens import check_level
from ..evaluation.registry import family_of
from ..recipes.recipe import Recipe
from ..results.frame import Results
from ..results.result import Result
from .on_dask import run_on_dask
from .threads import run_ordered


def _dump_hint(store: Store, name: str) -> str:
    return f"hs dump --model {store.model['name']} --task {name} --out {store.path}"


class Engine:
    """Evaluates recipes on a store's tasks, keeping what a grid reuses: pooled matrices (in memory and
    in the disk cache), fitted post-processing chains and one evaluator per task.

        engine = Engine(hsstore.open("runs/minilm"), options={"classification": "probe"})
        engine.evaluate(get_task("stsb"), parse_recipe("layers=last;pool=mean")).main_score
        engine.embed("stsb", recipe)          # the recipe's sentence matrix, rows in stored order

    ``options`` are the task families' protocol options (analysis/evaluation/family.py); ``run`` runs a
    grid on threads or Dask workers. Evaluations may run on several threads: embedding takes a lock,
    scoring does not.
    """

    def __init__(self, store: Store, options: dict | None = None, disk_cache: bool = True):
        self.store, self.options = store, options or {}
        self.pooler = Pooler(store, disk_cache=disk_cache)
        self._evaluators: dict[str, object] = {}
        self._chains: dict[tuple, list] = {}
        self._fit_warnings: dict[tuple, tuple[str, ...]] = {}
        self._embed_lock = threading.Lock()  # pooling caches are not thread-safe: one embedding at a time
        self._input_checked = False

    @property
    def disk_cache(self) -> bool:
        """Whether pooled matrices are read from and written to the disk cache."""
        return self.pooler.disk is not None and self.pooler.disk.enabled

    def pool(self, corpus_name: str, recipe: Recipe) -> np.ndarray:
        """The recipe's pooled matrix of a corpus without post-processing, computed (or found) once: a
        Dask pooling task runs this to fill the disk cache."""
        with self._embed_lock:
            return self.pooler.embed(self.store.corpus(corpus_name), recipe)

    def forget(self) -> None:
        """Drop what was kept for the tasks evaluated so far (pooled matrices, fitted chains,
        evaluators); the static views' tables stay. A grid run task by task stays at one task's memory."""
        with self._embed_lock:
            self.pooler.pooled.clear()
            self.pooler.weights.clear()
            self._chains.clear()
            self._fit_warnings.clear()
            self._evaluators.clear()

    def check(self, tasks: list[Task], recipes: list[Recipe]) -> None:
        """Fail early, with the command that fixes it, before any computation."""
        have = set(self.store.corpora)
        for task in tasks:
            if task.family == "corpus":
                raise HsError(f"{task.id} is a reference corpus, not an evaluation task; use it as @{task.id} in a recipe")
            family_of(task)
            if task.id not in have:
                raise StoreError(f"store {self.store.path} has no complete corpus for task {task.id}; run: "
                              f"{_dump_hint(self.store, task.id)}")
            for recipe in recipes:
                for corpus, _ in self.inputs(task, recipe)[1:]:
                    if corpus not in have:
                        raise HsError(f"recipe {recipe} embeds {task.id}'s queries from {corpus!r}, which store "
                                      f"{self.store.path} lacks; dump the task with that template (hs dump "
                                      f"--task-file PATH --template TEMPLATE; `hs info` lists the templated corpora)")
        for recipe in recipes:
            for ref in recipe.references:
                if ref not in have:
                    raise StoreError(f"recipe {recipe} needs corpus {ref!r}, which store {self.store.path} lacks; run: "
                                  f"{_dump_hint(self.store, ref)}")
            for part in recipe.view:
                self.pooler.view_layers(recipe, part.step)  # layers the store lacks
                view = part.step.build()
                view.key(self.store)  # a view whose data is missing (GloVe not installed) fails now
                check_level(recipe, view.LEVEL, view.NAME)
                if view.uses_input_embeddings():
                    self._has_input()
            for step in recipe.post:
                post_mod.make(step)  # parameter errors surface now
            if any(d.name == "special" for d in recipe.drop):  # a tokenizer that adds none (GPT-2) has none to drop
                for task in tasks:
                    if not (self.store.corpus(task.id).all_token_kinds == KIND_SPECIAL).any():
                        raise HsError(f"recipe {recipe} drops special tokens, but {task.id}'s tokenizer added none "
                                      f"({self.store.model['name']}); leave out drop=special")

    def _has_input(self) -> None:
        """Fail now if the store lacks the input-embedding matrix (read once)."""
        if not self._input_checked:
            self.store.input_embeddings()
            self._input_checked = True

    def evaluator(self, task: Task):
        """The task's evaluator under this engine's protocol options (built once: it maps texts to ids)."""
        if task.id not in self._evaluators:
            self._evaluators[task.id] = family_of(task).build(task, self.store.corpus(task.id), self.options)
        return self._evaluators[task.id]

    def embed(self, task_id: str, recipe: Recipe) -> np.ndarray:
        """Post-processed sentence matrix of a corpus under ``recipe``, rows in stored order (runners/embed.py
        gives them in the corpus's original order)."""
        return self._embed(task_id, recipe)[0]

    def _embed(self, task_id: str, recipe: Recipe) -> tuple[np.ndarray, tuple[str, ...]]:
        """The sentence matrix, and the warnings of its post-processing fits (a degenerate whitening)."""
        corpus = self.store.corpus(task_id)
        X = self.pooler.embed(corpus, recipe)
        if not recipe.post:
            return X, ()
        chain = self.fit_post(corpus, recipe, X)
        return post_mod.apply(chain, X), self._fit_warnings.get(self._chain_key(corpus, recipe), ())

    @staticmethod
    def _chain_key(corpus, recipe: Recipe) -> tuple:
        uses_task = any(s.ref == "task" for s in recipe.post)
        return str(recipe), corpus.fingerprint if uses_task else None

    def fit_post(self, corpus, recipe: Recipe, X_task: np.ndarray | None) -> list:
        """The recipe's post-processing steps fitted in order, each on its reference passed through the
        earlier ones; ``@task`` steps on ``X_task``, the matrix of ``corpus`` (a fitted recipe names
        every reference, analysis/fitted, and passes None)."""
        bare = replace(recipe, post=())
        key = self._chain_key(corpus, recipe)
        if key in self._chains:
            return self._chains[key]
        fitted, warnings = [], []
        for step in recipe.post:
            ref = X_task if step.ref in ("task", None) else self.pooler.embed(self.store.corpus(step.ref), bare)
            fitted.append(post_mod.make(step).fit(None if ref is None else post_mod.apply(fitted, ref)))
            if getattr(fitted[-1], "warning_", None):
                where = f"{corpus.name}'s own sentences" if step.ref in ("task", None) else step.ref
                warnings.append(f"post={step} fitted on {where}: {fitted[-1].warning_}")
        self._chains[key] = fitted
        self._fit_warnings[key] = tuple(warnings)
        return fitted

    def inputs(self, task: Task, recipe: Recipe) -> list[tuple[str, Recipe]]:
        """The (corpus, recipe) sentence matrices an evaluation embeds: the task's corpus under the
        recipe; for a family that embeds queries apart (retrieval), a recipe reading a prompt template
        (view=prompt:template=T) embeds the documents from the task's corpus and the queries from
        ``<task>~T``, each through its stored states as they are (docs/tasks.md)."""
        split = query_template(recipe) if family_of(task).query_side else None
        if split is None:
            return [(task.id, recipe)]
        template, plain = split
        return [(task.id, plain), (f"{task.id}{SEPARATOR}{template}", plain)]

    def evaluate(self, task: Task, recipe: Recipe, diagnostics: bool = False) -> Result:
        t0 = time.perf_counter()
        evaluator = self.evaluator(task)
        (name, main), *queries = self.inputs(task, recipe)
        extra = {}
        with self._embed_lock:
            X, warnings = self._embed(name, main)
            for corpus, side in queries:  # the queries' own matrix, in the task's order of queries
                rows = self.store.corpus(corpus).ids_of(evaluator.query_texts)
                Q, more = self._embed(corpus, side)
                extra["queries"], warnings = Q[rows], warnings + more
        # a degenerate recipe's undefined score is refused below, in one line, not with numpy's warnings
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            scores = evaluator(X, **extra)
            _check_defined(scores, task, recipe, X)
            seconds = time.perf_counter() - t0
            diag = {}
            if diagnostics:
                diag = self.evaluator(task).diagnostics(X)
                with self._embed_lock:
                    diag |= self.pooler.unseen(self.store.corpus(task.id), recipe)
        return Result(recipe, task, scores, seconds, diag, warnings, int(X.shape[1]))

    def run(self, tasks: list[Task], recipes: list[Recipe], diagnostics: bool = False, progress: bool = True,
            jobs: int | None = None, scheduler: str | None = None) -> Results:
        """Every (recipe, task) evaluation, ``jobs`` at a time (default: all cores), in recipe-major order
        (a list with ``.to_frame()``, results/frame.py); with ``scheduler`` (``local:N`` or a dask
        scheduler's address), on dask workers (on_dask.py).

        Each evaluation runs single-threaded in BLAS/OpenMP (threadpoolctl), so that workers do not
        oversubscribe the cores and the numbers depend on neither ``jobs`` nor the scheduler."""
        self.check(tasks, recipes)
        work = [(recipe, task) for recipe in recipes for task in tasks]
        with tqdm(total=len(work), desc="eval", unit="eval", disable=None if progress else True, dynamic_ncols=True) as bar:
            if scheduler:
                return Results(run_on_dask(self, work, scheduler, diagnostics, done=bar.update), self.store)
            for task in tasks:
                self.evaluator(task)  # built once, up front (they map texts to sentence ids)
            return Results(run_ordered(lambda item: self.evaluate(item[1], item[0], diagnostics), work, jobs,
                                       done=bar.update, cost=lambda item: self.evaluator(item[1]).cost,
                                       tasks=tasks), self.store)


def store_task(store: Store, name: str) -> UserTask | None:
    """The user's task whose corpus ``name`` the store holds (dumped from a task file, its definition
    stored beside it), or None if the corpus is no such task's."""
    if SEPARATOR in name or name not in store.corpora:  # a templated variant is not a task of its own
        return None
    corpus = store.corpus(name)
    recorded = (corpus.attrs.get("source") or {}).get("task")
    if not isinstance(recorded, dict):  # a benchmark task's corpus records its id
        return None
    lines = corpus.task_lines()
    if lines is None:
        raise HsError(f"corpus {name!r} of {store.path} records a task but holds no task definition; dump the task "
                      f"again into a new store")
    return UserTask.from_lines(name, lines, recorded, f"corpus {name!r} of {store.path}")


def store_tasks(store: Store) -> list[UserTask]:
    """Every user's task the store holds, in corpus order."""
    return [t for t in (store_task(store, n) for n in store.corpora) if t is not None]


def _check_defined(scores: dict, task: Task, recipe: Recipe, X: np.ndarray) -> None:
    """Refuse a score that is not a number (NaN, infinite): never a figure without a meaning."""
    def undefined(values: dict, prefix: str = ""):
        for k, v in values.items():
            if isinstance(v, dict):
                yield from undefined(v, f"{prefix}{k}.")
            elif isinstance(v, (float, np.floating)) and not np.isfinite(v):
                yield prefix + k

    bad = sorted(undefined(scores))
    if not bad:
        return
    same = len(X) > 1 and bool(np.all(X == X[:1]))
    why = ("every sentence gets the same vector (layer 0's first token is the same embedding in every "
           "sentence, for one)" if same else "its sentence vectors are degenerate (no variation, or NaN)")
    what = "its main score" if "main_score" in bad else f"its {bad[0]}"
    raise HsError(f"recipe {recipe} on {task.id}: {what} is undefined (NaN), as {why}; choose another recipe "
                  f"(another layer or pooling)")


def default_tasks(store: Store) -> list[Task]:
    """The evaluation tasks whose corpora the store holds: benchmark tasks, then the user's own."""
    return [TASKS[n] for n in store.corpora if n in TASKS and TASKS[n].family != "corpus"] + store_tasks(store)


def find_task(store: Store, name: str) -> Task:
    """A task by name: the user's own task the store holds, else a benchmark task (id or alias)."""
    task = store_task(store, name)
    if task is not None:
        return task
    try:
        return get_task(name)
    except HsError:
        raise HsError(f"unknown task {name!r}: not a benchmark task and not one of store {store.path}'s own; "
                      f"`hs tasks {store.path}` lists both") from None


def resolve_tasks(store: Store, names: list[str]) -> list[Task]:
    tasks = [find_task(store, n) for n in names] if names else default_tasks(store)
    if not tasks:
        raise HsError(f"store {store.path} holds no evaluation task; dump one: {_dump_hint(store, 'stsb')}")
    return tasks
