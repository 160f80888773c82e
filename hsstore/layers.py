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
    for given, b in _parts(spec):
        a = given + n_layers + 1 if given < 0 and b is None else given
        for x, shown in ((a, given), (b, b)):  # each end checked before a range is expanded (0-9999999: one line)
            if x is not None and not 0 <= x <= n_layers:
                raise HsError(f"layer(s) {shown} in {_shown(spec)} do not exist: the model has layers 0..{n_layers} "
                              f"(0 = embedding output; -1 = the last)")
        out += range(a, b + 1) if b is not None else [a]
    return list(dict.fromkeys(out))


def _parts(spec: str) -> list[tuple[int, int | None]]:
    """``(a, b)`` for each range ``a-b`` of ``spec`` and ``(a, None)`` for each single number (``last``
    is -1); refuses what is not a layer list, and a range that runs backwards."""
    if not isinstance(spec, str) or not spec.strip():
        raise HsError(f"no layers in {_shown(spec)}; use {', '.join(NAMED)} or numbers like 0,4-6")
    out = []
    for part in spec.split(","):
        part = part.strip()
        m = _PART.fullmatch(part)
        if part == "last":
            out.append((-1, None))
        elif not m or len(part) > 12:
            raise HsError(f"cannot read layer {_shown(part)} in the layer list; use {', '.join(NAMED)} or numbers like 0,4-6")
        elif m.group(2) is not None:
            a, b = int(m.group(1)), int(m.group(2))
            if a < 0 or b < a:
                raise HsError(f"layer range {part!r} runs backwards or from a negative number: write it low-high, "
                              f"e.g. {min(abs(a), b)}-{max(abs(a), b)}")
            out.append((a, b))
        else:
            out.append((int(m.group(1)), None))
    return out


def _shown(text) -> str:
    """A user's text in a message, cut short: an error stays one readable line."""
    return repr(text) if not isinstance(text, str) or len(text) <= 40 else repr(text[:40]) + "..."


def check_syntax(spec: str) -> str:
    """Validate ``spec`` without knowing the model (recipes are parsed before a store is opened)."""
    if spec not in NAMED:
        _parts(spec)
    return spec
