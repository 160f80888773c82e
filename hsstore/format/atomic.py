"""Durable small writes: whole-file replacement by rename (store metadata, chunks, results files),
and the fault-injection points.

A metadata file is written to a temporary name in its own directory, flushed to disk, and renamed
over the old one (on object storage: one PUT of the whole object), so a reader (or a rerun after a
kill) sees the old file or the new one, never a mix. Every such write ends at a named fault point:
``HS_FAULT_KILL_AFTER=LABEL`` (or ``LABEL:N`` for the N-th time) makes the process SIGKILL itself
right there; ``scripts/faults.py`` and the tests use it to kill a dump after each distinct
metadata write (and ``HS_FAULT_BATCH_DELAY`` slows a dump or a merge down, to interrupt it midway).
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from . import storage
from .storage import TEMP_SUFFIX  # zarr's local store names its temporary files the same way

_hits: Counter = Counter()


def fault_point(label: str) -> None:
    """SIGKILL this process here if ``HS_FAULT_KILL_AFTER`` names ``label`` (a test hook)."""
    spec = os.environ.get("HS_FAULT_KILL_AFTER")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != label:
        return
    _hits[label] += 1
    if _hits[label] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Make ``path`` anew: ``write(tmp)`` writes a temporary file beside it, which one rename puts in its
    place. Whatever fails (a full disk, an error in ``write``), the temporary file is removed and a file
    that was at ``path`` is left as it was, never truncated. Results files (``--json``, ``--csv``,
    ``--mteb-dir``, ``--plot``, ``hs report``) and the store's own small files are written so."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc  # the file asked for, not the temporary one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fault_delay() -> None:
    """Sleep ``HS_FAULT_BATCH_DELAY`` seconds (a test hook: slows a dump's batches and a merge's shards
    so the drill can interrupt them midway)."""
    delay = float(os.environ.get("HS_FAULT_BATCH_DELAY") or 0)
    if delay:
        time.sleep(delay)


def write_bytes(path: Path, *parts: bytes, sync: bool = False) -> None:
    """Replace ``path`` with ``parts`` (concatenated) in one rename (``sync``: flush to disk first);
    on object storage, in one PUT (storage.py)."""
    if storage.is_remote(path):
        return storage.put_object(path, b"".join(parts))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            for data in parts:
                fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())

    replace_file(path, write)


def write_group_attrs(group_dir: Path, attrs: dict, label: str) -> None:
    """Set a Zarr v3 group's attributes in one atomic write of its ``zarr.json``."""
    meta = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
    write_bytes(group_dir / "zarr.json", json.dumps(meta, indent=2, sort_keys=True).encode(), sync=True)
    fault_point(label)


def read_group_attrs(group_dir: Path) -> dict:
    """A group's attributes straight from its ``zarr.json`` (raises OSError/ValueError if unreadable)."""
    meta = json.loads((group_dir / "zarr.json").read_text())
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        raise ValueError(f"{group_dir / 'zarr.json'} is not a Zarr group")
    return dict(meta.get("attributes") or {})


def remove_temp_files(root: Path) -> list[Path]:
    """Delete the temporary files a killed writer left under ``root``; returns them."""
    if storage.is_remote(root):
        return storage.remove_temp(root)
    removed = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(TEMP_SUFFIX):
                path = Path(dirpath, name)
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
