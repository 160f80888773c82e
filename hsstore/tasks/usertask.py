"""A user's own task (``hs dump --task-file``): its definition normalised to JSON lines, stored with
its corpus, and named by a content hash.

The lines are a header (``{"hs_task": 1, "family": ...}``) and one record per row in the shape the
bundled tasks' records have (``text``, ``text2``, ``score``, ``label``, ``split``, ``subset``; a
retrieval task's ``query``, ``document`` and ``qrel`` rows), each written as canonical JSON. Their
SHA-256 is the task's identity: the dump puts it in the corpus's fingerprint (so the pooled-matrix
cache and the study's run key follow it) and in the corpus record, and results records carry it.
``hs eval`` reads the lines from the store, never the user's file, and checks them against the
identity the corpus records.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from hsstore.errors import StoreError

from .registry import Dataset, Task

FORMAT = 1  # the lines' format version (the header's hs_task)


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class UserTask(Task):
    """A task defined by a user's file; ``rows`` are its records, ``origin`` where they came from
    (``file``, ``file_sha256``)."""
    rows: tuple = field(default=(), compare=False, repr=False)
    origin: dict = field(default_factory=dict, compare=False)
    header: dict = field(default_factory=dict, compare=False)

    @classmethod
    def make(cls, name: str, family: str, rows: list[dict], origin: dict, header: dict | None = None) -> "UserTask":
        splits = tuple(dict.fromkeys(r["split"] for r in rows if "split" in r)) or (
            (header or {}).get("split", "test"),)
        protocol = ""
        if family in ("classification", "pair-trained"):
            protocol = "cv" if splits == ("all",) else "split"
        return cls(name, family, name, splits, protocol=protocol,
                   description=f"your {family} task from {origin.get('file', 'a file')}", rows=tuple(rows),
                   origin=dict(origin), header={"hs_task": FORMAT, "family": family, **(header or {})})

    def records(self) -> list[dict]:
        return list(self.rows)

    @property
    def info(self) -> Dataset:
        if self.family == "retrieval":  # its rows: the queries
            counts = {self.splits[0]: sum(1 for r in self.rows if "query" in r)}
        else:
            counts = {s: sum(1 for r in self.rows if r["split"] == s) for s in self.splits}
        return Dataset(self.id, self.origin.get("file", "?"), "your own", counts, f"task identity {self.identity}")

    @cached_property
    def lines(self) -> list[str]:
        """The stored definition: the header, then one canonical JSON record a row."""
        return [canonical(self.header), *map(canonical, self.rows)]

    @cached_property
    def identity(self) -> str:
        return hashlib.sha256("\n".join(self.lines).encode("utf-8")).hexdigest()[:16]

    def provenance(self) -> dict:
        return {"family": self.family, "identity": self.identity, "origin": self.origin.get("file", "")}

    def summary(self) -> dict:
        """What the corpus record keeps of the task (``source.task``): family, identity, origin, row counts."""
        return {"family": self.family, "identity": self.identity, "rows": len(self.rows), **self.origin}

    @classmethod
    def from_lines(cls, name: str, lines: list[str], recorded: dict, where: str) -> "UserTask":
        """The task stored as ``lines`` with its corpus; ``recorded``: the corpus record's ``source.task``.
        Lines that do not hash to the recorded identity are damaged or edited: an error, never a figure."""
        try:
            header, rows = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
            if header.get("hs_task") != FORMAT:
                raise ValueError(header)
            task = cls.make(name, header["family"], rows, {k: v for k, v in recorded.items()
                                                           if k in ("file", "file_sha256")},
                            {k: v for k, v in header.items() if k not in ("hs_task", "family")})
        except (ValueError, KeyError, TypeError, IndexError):
            task = None
        if task is None or task.identity != recorded.get("identity"):
            raise StoreError(f"{where}: the stored task definition does not match the identity its corpus records "
                             f"({recorded.get('identity')}); it was damaged or edited: dump the task again into a "
                             f"new store")
        return task
