"""Layer specifications shared by ``hs dump --layers`` and recipes' ``layers=``."""
from __future__ import annotations

import re

from .errors import HsError

NAMED = ("last", "first-last", "emb-last", "all")
_PART = re.compile(r"(-?\d+)(?:-(\d+))?")


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """Model layer numbers (0 = embedding output, ``n_layers`` = last) of ``spec``, in the given order.

    ``last``, ``first-last`` (1 and L), ``emb-last`` (0 and L), ``all``, or comma-separated numbers
    and ranges such as ``0,4-6`` or ``0,last``; a negative number counts from the end (-1 = last).
    """
    named = {"last": [n_layers], "first-last": [1, n_layers], "emb-last": [0, n_layers],
             "all": list(range(n_layers + 1))}
    if spec in named:
        return named[spec]
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if part == "last":
            out.append(n_layers)
            continue
        m = _PART.fullmatch(part)
        if not m:
            raise HsError(f"cannot read layer {part!r} in {spec!r}; use {', '.join(NAMED)} or numbers like 0,4-6")
        a = int(m.group(1))
        if m.group(2):
            out += range(a, int(m.group(2)) + 1)
        else:
            out.append(a + n_layers + 1 if a < 0 else a)
    bad = [x for x in out if not 0 <= x <= n_layers]
    if bad:
        raise HsError(f"layer(s) {bad} do not exist: the model has layers 0..{n_layers} (0 = embedding output)")
    return list(dict.fromkeys(out))


def check_syntax(spec: str) -> str:
    """Validate ``spec`` without knowing the model (recipes are parsed before a store is opened)."""
    if spec not in NAMED:
        parse_layers(spec, 10**6)
    return spec
