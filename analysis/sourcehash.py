"""Digests of hs's own source, for the keys that guard computed numbers.

The pooled-matrix cache (embedding/diskcache.py) and the study's run key (runners/study_run.py)
name the code that computed what they hold by a digest of its source: every module under the
packages they declare, at any depth, found by walking the package tree (never a list of module
names, which would go blind to a module that moves or is added). A declared package or module that
does not exist is an error, not a skipped entry.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the directory that holds the packages


def modules(packages: tuple[str, ...], leave_out: tuple[str, ...] = (), root: Path = ROOT) -> list[tuple[str, Path]]:
    """(dotted name, file) of every module of ``packages`` (packages walked to any depth, or single
    modules), less the modules and packages named in ``leave_out``, in a fixed order."""
    out = []
    for name in packages:
        base = root.joinpath(*name.split("."))
        files = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
        if not files or not files[0].is_file():
            raise FileNotFoundError(f"no module or package {name!r} under {root}")
        for path in files:
            dotted = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            if not any(dotted == x or dotted.startswith(x + ".") for x in leave_out):
                out.append((dotted, path))
    return out


def digest(packages: tuple[str, ...], leave_out: tuple[str, ...] = (), root: Path = ROOT) -> str:
    """A short SHA-256 of the names and sources of ``modules(packages, leave_out)``."""
    h = hashlib.sha256()
    for dotted, path in modules(packages, leave_out, root):
        h.update(dotted.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
