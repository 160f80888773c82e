"""A user's task files (``hs dump --task-file``), read into a ``UserTask``; docs/tasks.md shows each format.

- A table (``.tsv``, ``.csv`` or ``.jsonl``) with a header (JSONL: each line an object) whose columns
  say the family, or ``--task-family`` does (FORMATS): STS pairs with a gold ``score``; texts with a
  ``label`` and an optional ``split`` (classification) or without (clustering: the columns of a
  classification file without splits, so its family must be given); pairs with a 0/1 ``label``
  (pair classification). TSV has no quoting (a field ends at the next tab); CSV quotes as RFC 4180.
- A retrieval task in BEIR's layout: a folder holding ``corpus.jsonl`` (``_id``, ``text``, optional
  ``title``), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``,
  ``corpus-id``, ``score``); the folder means its ``test`` split (or its only one), the path of a
  qrels file means that split. A document is its title and text joined by a space, as MTEB joins
  them; the queries are those the qrels judge.

Every problem is one line naming the file, the line and the column, and what to do about it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hsstore.errors import HsError

from .corpusfile import decode_file
from .registry import TASKS, get_task
from .usertask import UserTask

SPLITS = ("train", "dev", "test")
OUTER_FOLDS, INNER_FOLDS = 10, 5  # SentEval's cross-validation (analysis/evaluation/classification.py)
RETRIEVAL = "retrieval"
BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/<split>.tsv")


@dataclass(frozen=True)
class Format:
    """A tabular task file's columns for one family."""
    family: str
    columns: tuple[str, ...]  # required, in this order in docs/tasks.md
    optional: tuple[str, ...] = ()
    inferred: bool = True  # whether these columns alone say the family

    def describe(self) -> str:
        return ", ".join(self.columns) + "".join(f" [, {c}]" for c in self.optional)


FORMATS = {f.family: f for f in [
    Format("sts", ("text1", "text2", "score"), ("subset",)),
    Format("classification", ("text", "label"), ("split",)),
    Format("clustering", ("text", "label"), ("subset",), inferred=False),
    Format("pair-classification", ("text1", "text2", "label")),
    Format("pair-trained", ("text1", "text2", "label", "split"), inferred=False),
]}
FAMILIES = (*FORMATS, RETRIEVAL)  # the families a task file can define


class Cells:
    """One row's values, checked and converted; errors name the file, line and column."""

    def __init__(self, path: Path, line: int, values: dict[str, Any]):
        self.path, self.line, self.values = path, line, values

    def fail(self, column: str, what: str, fix: str = "fix or remove that line") -> HsError:
        return HsError(f"{self.path} line {self.line}, column {column!r}: {what}; {fix}")

    def raw(self, column: str):
        value = self.values.get(column)
        if value is None:
            raise self.fail(column, "missing")
        return value

    def text(self, column: str, allow_empty: bool = False) -> str:
        value = self.raw(column)
        if not isinstance(value, str):
            raise self.fail(column, f"{json.dumps(value)[:30]} is not a string")
        value = value.strip()
        if not value and not allow_empty:
            raise self.fail(column, "empty text")
        return value

    def number(self, column: str) -> float:
        value = self.raw(column)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.fail(column, f"{json.dumps(value)[:30]} is not a number")
        try:
            number = float(value)
        except ValueError:
            raise self.fail(column, f"{value.strip()[:30]!r} is not a number") from None
        if not math.isfinite(number):
            raise self.fail(column, f"{value!r} is not a finite number")
        return number

    def label(self, column: str) -> str:
        value = self.raw(column)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(column, f"{json.dumps(value)[:30]} is not a label (a string or a whole number)")
        value = str(value).strip()
        if not value:
            raise self.fail(column, "empty label")
        return value

    def binary(self, column: str) -> int:
        value = self.label(column)
        if value not in ("0", "1"):
            raise self.fail(column, f"label {value[:30]!r} is not 0 or 1 (a pair is a match, 1, or not, 0)")
        return int(value)

    def relevance(self, column: str) -> int:
        value = self.label(column)
        if not (value.isascii() and value.isdigit()):
            raise self.fail(column, f"relevance {value[:30]!r} is not a whole number >= 0")
        return int(value)

    def split(self, column: str = "split") -> str:
        value = self.label(column)
        if value not in SPLITS:
            raise self.fail(column, f"split {value[:30]!r} is not one of {', '.join(SPLITS)}")
        return value


def _read(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise HsError(f"task file {path} does not exist" if not path.exists() else f"task file {path} is not a file")
    text = decode_file(path, encoding)
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark (Excel writes one)


def _lines(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    """A JSONL file's objects with their line numbers (a line ends at \\n; blank lines are skipped)."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise HsError(f"{path} line {number}, column {getattr(exc, 'colno', '?')}: not valid JSON "
                          f"({getattr(exc, 'msg', exc)}); each line must be one JSON object") from None
        if not isinstance(value, dict):
            raise HsError(f"{path} line {number}: {json.dumps(value)[:30]} is not a JSON object; each line must be "
                          f"one object, e.g. {{\"text\": \"...\"}}")
        yield number, value


def _table(path: Path, text: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """The columns of a TSV, CSV or JSONL table and its rows (line number, column -> value)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(_lines(path, text))
        if not rows:
            raise HsError(f"task file {path} holds no row")
        return list(rows[0][1]), iter(rows)
    if suffix not in (".tsv", ".csv"):
        raise HsError(f"task file {path}: give a .tsv, .csv or .jsonl table, or a BEIR folder for retrieval "
                      f"(docs/tasks.md)")
    dialect = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if suffix == ".tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **dialect)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise HsError(f"{path} line {reader.line_num}: {exc}") from None
    if not header:
        raise HsError(f"task file {path} is empty; its first line names the columns")
    header = [h.strip() for h in header]

    def rows():
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as exc:
                raise HsError(f"{path} line {reader.line_num}: {exc} (CSV quoting); fix that line") from None
            if fields is None:
                return
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                raise HsError(f"{path} line {reader.line_num}: {len(fields)} fields, the header has {len(header)} "
                              f"({', '.join(header)}); fix or remove that line")
            yield reader.line_num, dict(zip(header, fields))
    return header, rows()


def infer_family(path: Path, columns: list[str]) -> str:
    """The family whose columns the file has; text and label alone could be either of two."""
    have = set(columns)
    matches = [f for f in FORMATS.values() if f.inferred and set(f.columns) <= have]
    matches.sort(key=lambda f: -len(f.columns))
    if {"text", "label"} <= have and "split" not in have:
        raise HsError(f"{path} has columns text and label: pass --task-family classification (cross-validated) or "
                      f"--task-family clustering")
    if not matches:
        raise HsError(f"{path} line 1: columns {', '.join(columns)} say no task family; "
                      + "; ".join(f"{f.family}: {f.describe()}" for f in FORMATS.values()) + " (docs/tasks.md)")
    return matches[0].family


def _rows(family: str, path: Path, columns: list[str], table: Iterator[tuple[int, dict]]) -> list[dict]:
    out = []
    has_split, has_subset = "split" in columns, "subset" in columns and "subset" in FORMATS[family].optional
    for line, values in table:
        c = Cells(path, line, values)
        if family == "sts":
            row = {"text": c.text("text1"), "text2": c.text("text2"), "score": c.number("score"), "split": "test"}
        elif family in ("classification", "clustering"):
            row = {"text": c.text("text"), "label": c.label("label")}
            if family == "classification":
                row["split"] = c.split() if has_split else "all"
            else:
                row["split"] = "test"
        else:  # the pair families
            row = {"text": c.text("text1"), "text2": c.text("text2"),
                   "label": c.binary("label") if family == "pair-classification" else c.label("label"),
                   "split": c.split() if family == "pair-trained" else "test"}
        if has_subset:
            row["subset"] = c.label("subset")
        out.append(row)
    return out


def _check_whole(family: str, path: Path, rows: list[dict]) -> None:
    """What no single line shows: a task every evaluation of which is undefined."""
    if not rows:
        raise HsError(f"task file {path} holds no row")
    labels = {str(r.get("label")) for r in rows}
    splits = {r["split"] for r in rows}
    if family == "sts":
        for subset in dict.fromkeys(r.get("subset") for r in rows):
            if len({r["score"] for r in rows if r.get("subset") == subset}) < 2:
                where = f" of subset {subset!r}" if subset is not None else ""
                raise HsError(f"{path}: every pair{where} has the same score; an STS task needs scores that differ "
                              f"(Spearman's rho)")
    if family in ("classification", "clustering", "pair-trained") and len(labels) < 2:
        raise HsError(f"{path}: every row has label {labels.pop()!r}; a {family} task needs at least two labels")
    if family == "pair-classification" and labels != {"0", "1"}:
        raise HsError(f"{path}: every pair has label {labels.pop()}; pair classification needs matches (1) and "
                      f"non-matches (0)")
    if family in ("classification", "pair-trained") and splits != {"all"} and not {"train", "test"} <= splits:
        missing = " and ".join(s for s in ("train", "test") if s not in splits)
        raise HsError(f"{path}: no row of split {missing}; a {family} file with a split column needs train and test "
                      f"rows (dev is optional; without the column, classification is cross-validated)")
    if family in ("classification", "pair-trained"):  # SentEval's folds: 10 outer (CV), else 5 inner on train
        folds, pool = (OUTER_FOLDS, "all") if splits == {"all"} else (INNER_FOLDS, "train")
        if splits == {"all"} or "dev" not in splits:
            counts = Counter(r["label"] for r in rows if r["split"] == pool)
            label, n = min(counts.items(), key=lambda kv: kv[1])
            if n < folds:
                what = "cross-validated classification" if pool == "all" else "the choice of C on train (no dev rows)"
                raise HsError(f"{path}: label {label[:30]!r} has {n} {'' if pool == 'all' else 'train '}rows; "
                              f"{what} needs at least {folds} of every label ({folds} folds): add rows, merge or drop "
                              f"the label" + (", or give a split column" if pool == "all" else ", or add dev rows"))


def _name(path: Path, name: str | None, default: str) -> str:
    name = name or default
    if name.lower() in {a.lower() for t in TASKS.values() for a in (t.id, *t.aliases)}:
        raise HsError(f"{path}: task name {name!r} is a bundled task's ({get_task(name).id}); name yours with "
                      f"--task-name")
    return name


def _file_sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def read_task_file(path: str | Path, family: str | None = None, name: str | None = None,
                   encoding: str = "utf-8") -> UserTask:
    """The task a file (or BEIR folder) defines; ``family``: its family where the columns do not say it."""
    path = Path(path)
    if family is not None and family not in FAMILIES:
        raise HsError(f"--task-family {family!r} is not a family a task file can define: {', '.join(FAMILIES)}")
    beir = path.is_dir() or (path.suffix.lower() == ".tsv" and path.parent.name == "qrels"
                             and (path.parent.parent / "corpus.jsonl").exists())
    if beir:
        if family not in (None, RETRIEVAL):
            raise HsError(f"{path} is a BEIR folder, a retrieval task; leave out --task-family {family}")
        return read_beir(path, name, encoding)
    if family == RETRIEVAL:
        raise HsError(f"{path}: a retrieval task is a BEIR folder ({', '.join(BEIR_FILES)}), not one file; "
                      f"give the folder")
    text = _read(path, encoding)
    columns, table = _table(path, text)
    family = family or infer_family(path, columns)
    missing = [c for c in FORMATS[family].columns if c not in columns]
    if missing and path.suffix.lower() != ".jsonl":  # a JSONL row missing a field names its own line
        raise HsError(f"{path} line 1: no column {missing[0]!r} (columns: {', '.join(columns)}); a {family} task "
                      f"file has columns {FORMATS[family].describe()}")
    rows = _rows(family, path, columns, table)
    _check_whole(family, path, rows)
    return UserTask.make(_name(path, name, path.stem), family, rows,
                         {"file": str(path), "file_sha256": _file_sha256(path)})


# ---- BEIR ----------------------------------------------------------------------------------------

def _beir_paths(path: Path) -> tuple[Path, Path, str]:
    """(folder, qrels file, split) of a BEIR folder or of one of its qrels files."""
    if path.is_file():
        return path.parent.parent, path, path.stem
    qrels = path / "qrels"
    found = sorted(qrels.glob("*.tsv")) if qrels.is_dir() else []
    for need in ("corpus.jsonl", "queries.jsonl"):
        if not (path / need).is_file():
            raise HsError(f"{path} is not a BEIR folder: it lacks {need} (the layout: {', '.join(BEIR_FILES)}; "
                          f"docs/tasks.md)")
    if not found:
        raise HsError(f"{path} is not a BEIR folder: it has no qrels/<split>.tsv (the layout: {', '.join(BEIR_FILES)})")
    test = [p for p in found if p.stem == "test"]
    if not test and len(found) > 1:
        raise HsError(f"{path} has qrels for {', '.join(p.stem for p in found)} and none for test: give the split's "
                      f"file, e.g. --task-file {found[0]}")
    return path, (test or found)[0], (test or found)[0].stem


def _id(c: Cells, column: str) -> str:
    value = c.raw(column)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise c.fail(column, f"{json.dumps(value)[:30]} is not an id (a string)")
    value = str(value).strip()
    if not value:
        raise c.fail(column, "empty id")
    return value


def _jsonl_texts(path: Path, encoding: str, titled: bool) -> dict[str, tuple[str, int]]:
    """``_id`` -> (text, line) of a BEIR corpus or queries file; a document's title leads its text."""
    out: dict[str, tuple[str, int]] = {}
    for line, values in _lines(path, _read(path, encoding)):
        c = Cells(path, line, values)
        key = _id(c, "_id")
        if key in out:
            raise c.fail("_id", f"{key[:40]!r} is already the id of line {out[key][1]}", "give each line its own id")
        text = c.text("text", allow_empty=titled)
        if titled and values.get("title") is not None:
            text = (c.text("title", allow_empty=True) + " " + text).strip()
        if not text:
            raise c.fail("text", "empty text (and no title)")
        out[key] = (text, line)
    if not out:
        raise HsError(f"{path} holds no line")
    return out


def read_beir(path: Path, name: str | None = None, encoding: str = "utf-8") -> UserTask:
    root, qrels_path, split = _beir_paths(path)
    documents = _jsonl_texts(root / "corpus.jsonl", encoding, titled=True)
    queries = _jsonl_texts(root / "queries.jsonl", encoding, titled=False)
    text = _read(qrels_path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    columns = ["query-id", "corpus-id", "score"]
    judged: dict[tuple[str, str], int] = {}
    qrels = []
    for fields in reader:
        if not fields or fields == [""]:
            continue
        line = reader.line_num
        if len(fields) != 3:
            raise HsError(f"{qrels_path} line {line}: {len(fields)} fields; a qrels line is query-id, corpus-id and "
                          f"score, separated by tabs")
        if line == 1 and not fields[2].strip().isdigit():  # BEIR's header (query-id corpus-id score)
            columns = [f.strip() for f in fields]
            continue
        c = Cells(qrels_path, line, dict(zip(columns, fields)))
        qid, did, rel = c.text(columns[0]), c.text(columns[1]), c.relevance(columns[2])
        if qid not in queries:
            raise c.fail(columns[0], f"{qid[:40]!r} is no query of {root / 'queries.jsonl'}")
        if did not in documents:
            raise c.fail(columns[1], f"{did[:40]!r} is no document of {root / 'corpus.jsonl'}")
        if (qid, did) in judged:
            raise c.fail(columns[1], f"query {qid[:40]!r} already judges this document on line {judged[qid, did]}",
                         "keep one judgment a pair")
        judged[qid, did] = line
        qrels.append((qid, did, rel))
    if not qrels:
        raise HsError(f"{qrels_path} holds no judgment")
    if not any(rel >= 1 for _, _, rel in qrels):
        raise HsError(f"{qrels_path}: no judgment marks a document relevant (score >= 1); every ranking would "
                      f"score 0")
    used = {q for q, _, _ in qrels}
    rows = [{"query": q, "text": t} for q, (t, _) in queries.items() if q in used]
    rows += [{"document": d, "text": t} for d, (t, _) in documents.items()]
    rows += [{"qrel": [q, d, rel]} for q, d, rel in qrels]
    default = root.name if split == "test" else f"{root.name}-{split}"
    return UserTask.make(_name(root, name, default), RETRIEVAL, rows,
                         {"file": str(root if path.is_dir() else qrels_path),
                          "file_sha256": _file_sha256(root / "corpus.jsonl", root / "queries.jsonl", qrels_path)},
                         {"split": split})
