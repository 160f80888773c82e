"""Pieces every benchmark script shares: a median timer and the printed/JSON report."""
from __future__ import annotations

import json
import statistics
import time


def timed(fn, repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(figures: dict, json_path=None) -> None:
    """Print one figure a line; write them all to ``json_path`` as JSON if given."""
    for k, v in figures.items():
        print(f"{k:26s} {v if not isinstance(v, float) else f'{v:.4g}'}")
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
