"""Running a preset's grid into a results file that an interrupted run continues.

The results file is the JSON array ``hs eval --json`` writes (analysis/results/records.py), each record with
two more keys: ``protocol`` (the evaluation options) and ``study`` (preset, stage, axis and the run
key). The run key is a hash of everything the numbers depend on: the store's identity, the
fingerprints of the corpora the preset reads, the protocol options and the source of the code that
computes them. A rerun keeps the records whose key equals its own and drops the others (saying how
many), so stale numbers are never mixed in; it then evaluates only what is missing.

The file is rewritten atomically (a temporary file, then one rename) as evaluations finish, at most
as often as keeps the writing under a tenth of the run time, and always when the run stops, also on
an interrupt or an error. A kill loses at most the evaluations since the last write.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hsstore.errors import HsError
from hsstore.format.atomic import fault_point, write_bytes
from hsstore.tasks import get_task
from hsstore.tasks.presets import get_preset
from hsstore.tasks.templates import SEPARATOR

from .. import sourcehash
from ..results.records import records
from . import study
from .engine import Engine
from .threads import default_jobs, limit_worker_thread, single_threaded

# packages whose source decides the numbers (every module of each at any depth: conservative, never
# stale), less the grid and this runner (they choose which (recipe, task) pairs to evaluate, not what a
# pair scores), the report (it reads results files, it computes none) and what takes vectors out of hs
# (fitted recipes, vector files, hs embed: no evaluation imports them)
CODE_PACKAGES = ("analysis", "hsstore")
NOT_NUMBERS = ("analysis.runners.study", "analysis.runners.study_run", "analysis.report", "analysis.fitted",
               "analysis.runners.embed", "analysis.results.vector_files")


def code_digest() -> str:
    return sourcehash.digest(CODE_PACKAGES, NOT_NUMBERS)


def run_key(store, corpora: list[str], protocol: dict) -> str:
    fingerprints = {name: store.corpus(name).fingerprint for name in corpora}
    text = json.dumps({"store": store.identity, "corpora": fingerprints, "protocol": protocol,
                       "code": code_digest()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResultsFile:
    """The records of one run key, kept in memory and written to ``path`` (None: not saved) atomically."""

    def __init__(self, path: Path | None, key: str, log=print):
        self.path, self.key, self.log = path, key, log
        self.records: dict[tuple[str, str], dict] = {}
        self.dirty, self.last_write, self.write_cost = False, 0.0, 0.0
        if path is not None and path.exists():
            self._load()

    def _load(self) -> None:
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise HsError(f"results file {self.path} cannot be read as JSON ({exc}); move it away or give "
                          f"another --json file") from None
        if not isinstance(old, list) or not all(isinstance(r, dict) for r in old):
            raise HsError(f"results file {self.path} is not a JSON array of records; give another --json file")
        kept = [r for r in old if r.get("study", {}).get("key") == self.key]
        for r in kept:
            self.records[(r["recipe"], r["hs_task"])] = r
        if len(kept) < len(old):
            self.log(f"{self.path}: dropped {len(old) - len(kept)} of {len(old)} records made by another store, "
                     f"code or protocol")
            self.dirty = True
        if kept:
            self.log(f"{self.path}: resuming with {len(kept)} evaluations already done")

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self.records

    def add(self, record: dict) -> None:
        self.records[(record["recipe"], record["hs_task"])] = record
        self.dirty = True
        # write when the time since the last write is ten times what a write costs
        if time.perf_counter() - self.last_write >= 10 * self.write_cost:
            self.write()

    def write(self, order: list[tuple[str, str]] | None = None) -> None:
        if self.path is None or str(self.path) == "-" or not self.dirty:
            return
        t0 = time.perf_counter()
        first = [k for k in order or () if k in self.records]
        data = [self.records[k] for k in first + [k for k in self.records if k not in set(first)]]
        write_bytes(self.path, (json.dumps(data, indent=1) + "\n").encode())
        self.dirty = False
        self.last_write = time.perf_counter()
        self.write_cost = self.last_write - t0
        fault_point("study-results-written")


def _record(engine, result, protocol: dict, entry: study.Entry, key: str, preset: str) -> dict:
    record = records([result], engine.store)[0]
    record["protocol"] = protocol
    record["study"] = {"preset": preset, "stage": entry.stage, "axis": entry.axis, "key": key}
    return record


def _family_means(results: ResultsFile, tasks: list[str], entries: list[study.Entry]) -> dict:
    """Each recipe's mean main score over the family's tasks (from the stage-1 records)."""
    out = {}
    for e in entries:
        scores = [results.records[(str(e.recipe), t)]["scores"] for t in tasks]
        out[e.recipe] = float(np.mean([next(iter(s.values()))[0]["main_score"] for s in scores]))
    return out


def run_preset(store, name: str, json_path: Path | None, options: dict, jobs: int | None = None,
               disk_cache: bool = True, progress: bool = True, log=print,
               families: tuple[str, ...] | None = None) -> tuple[list[dict], dict]:
    """Run preset ``name``'s grid on ``store`` (only ``families`` of it, if given); returns (records in
    grid order, wall seconds per family). The grid is the preset's for the store's kind of model."""
    preset = get_preset(name)
    if families:
        preset.check_families(families)
    chosen = {f: tasks for f, tasks in preset.families.items() if not families or f in families}
    kind = preset.kind(bool(store.model.get("causal")))
    corpora = preset.corpora(bool(store.model.get("causal")), tuple(chosen))
    missing = [c for c in corpora if c not in store.corpora and not c.endswith("~empty")]
    missing += [c for c in corpora if c.endswith("~empty") and c not in store.all_corpora]
    dump_hint = f"hs dump --model {store.model['name']} --preset {name} --out {store.path}"
    if any(SEPARATOR not in c for c in missing):
        raise HsError(f"store {store.path} lacks {len(missing)} corpora of preset {name} ({', '.join(missing[:5])}"
                      f"{', ...' if len(missing) > 5 else ''}); run: {dump_hint}, or evaluate only some families "
                      f"(--family)")
    templates = {fam: study.family_template(preset, fam, kind) for fam in chosen}
    if missing:  # only templated variants: the grid without its prompt read-outs, said out loud
        lacking = {c.split(SEPARATOR)[0] for c in missing}
        for fam, tasks in chosen.items():
            if templates[fam] and lacking & set(tasks):
                log(f"hs: warning: {fam}: prompt read-outs left out: store {store.path} lacks {len(missing)} "
                    f"templated corpora ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                    f"dump them to add them: {dump_hint}")
                templates[fam] = None
        corpora = [c for c in corpora if c not in missing]
    glove = study.glove_available()
    if not glove:
        log("view glove skipped: its extra is not installed (pip install 'hs[glove]')")
    protocol = {**options, "diagnostics": True}
    key = run_key(store, [c for c in corpora if not c.endswith("~empty")], protocol)
    results = ResultsFile(json_path, key, log)
    engine = Engine(store, options, disk_cache=disk_cache)
    jobs = jobs or default_jobs()
    plans = {fam: study.stage1(fam, store.layers, store.n_model_layers, templates[fam], glove, kind) for fam in chosen}
    order: list[tuple[str, str]] = []
    walls: dict[str, float] = defaultdict(float)
    try:
        for fam, tasks in chosen.items():  # family by family, so a stopped run has whole families
            template = templates[fam]
            for stage in (1, 2):
                if stage == 2:
                    plans[fam] = study.stage2(fam, plans[fam], _family_means(results, tasks, plans[fam]),
                                              template, glove)
                entries = plans[fam]
                engine.check([get_task(t) for t in tasks], [e.recipe for e in entries])
                order += [(str(e.recipe), t) for t in tasks for e in entries]
                t0 = time.perf_counter()
                for task_id in tasks:
                    todo = [e for e in entries if (str(e.recipe), task_id) not in results]
                    if todo:
                        _run_task(engine, get_task(task_id), todo, results, protocol, key, name, jobs,
                                  progress, f"{fam} {task_id} (stage {stage})")
                        engine.forget()  # memory stays that of one task (stored states are streamed)
                walls[f"{fam} stage {stage}"] += time.perf_counter() - t0
    finally:
        results.dirty = True  # the last write may have been in finishing order: rewrite in the grid's
        results.write(order)
    return [results.records[k] for k in order], dict(walls)


def _run_task(engine, task, entries, results: ResultsFile, protocol, key, preset, jobs, progress: bool,
              desc: str) -> None:
    """Evaluate ``entries`` on one task, ``jobs`` at a time, recording each as it finishes; on an
    interrupt or error the evaluations not yet started are cancelled and the finished ones kept."""
    bar = tqdm(total=len(entries), desc=desc, unit="eval", leave=False, dynamic_ncols=True) if progress else None
    engine.evaluator(task)
    with single_threaded([task]), ThreadPoolExecutor(max_workers=jobs, initializer=limit_worker_thread) as pool:
        futures = {pool.submit(engine.evaluate, task, e.recipe, True): e for e in entries}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    results.add(_record(engine, fut.result(), protocol, futures[fut], key, preset))
                    if bar:
                        bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if bar:
                bar.close()
