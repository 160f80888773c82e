"""The model's own sentence-transformers pipeline (its ``modules.json``), read from its folder at dump time.

A sentence-transformers folder lists its modules in ``modules.json`` (Transformer, Pooling,
Normalize, ...) and the pooling mode in ``<pooling module>/config.json``. The dump stores what it
finds with the model identity, so ``hs eval -r model`` reproduces the model's own embedding
without guessing the pooling or the normalisation. Pipelines hs cannot reproduce from hidden
states (a Dense layer, two pooling modes at once) are stored with the reason, and ``-r model``
refuses them.
"""
from __future__ import annotations

import json
from pathlib import Path

from hsstore.errors import HsError

# sentence-transformers pooling flag -> (its mode name, hs's pool; None where hs has no equivalent)
POOLING_FLAGS = {
    "pooling_mode_cls_token": ("cls", "first"),
    "pooling_mode_mean_tokens": ("mean", "mean"),
    "pooling_mode_max_tokens": ("max", "max"),
    "pooling_mode_lasttoken": ("lasttoken", "last"),
    "pooling_mode_mean_sqrt_len_tokens": ("mean_sqrt_len_tokens", None),
    "pooling_mode_weightedmean_tokens": ("weightedmean", None),
}
MODULE_TYPES = ("Transformer", "Pooling", "Normalize")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_pipeline(model_dir: str | Path) -> dict | None:
    """The pipeline of a sentence-transformers folder, or None where the folder has no modules.json."""
    folder = Path(model_dir)
    modules = _read_json(folder / "modules.json") if folder.is_dir() else None
    if not isinstance(modules, list):
        return None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    out: dict = {"source": "modules.json", "modules": kinds, "pooling": None, "normalize": "Normalize" in kinds}
    problems = [f"module {k} is not reproducible from hidden states" for k in kinds if k not in MODULE_TYPES]
    pooling = [m for m, k in zip(modules, kinds) if k == "Pooling"]
    if len(pooling) != 1:
        problems.append(f"{len(pooling)} Pooling modules (hs reproduces exactly one)")
    else:
        config = _read_json(folder / pooling[0].get("path", "") / "config.json") or {}
        modes = [POOLING_FLAGS[f] for f in POOLING_FLAGS if config.get(f)]
        if len(modes) != 1:
            problems.append(f"pooling modes {[m for m, _ in modes]} (hs reproduces exactly one)")
        else:
            out["pooling"] = modes[0][0]
            if modes[0][1] is None:
                problems.append(f"pooling mode {modes[0][0]!r} has no hs pool")
        if config.get("include_prompt") is False:
            problems.append("the pooling excludes prompt tokens")
    settings = _read_json(folder / "sentence_bert_config.json") or {}
    if "max_seq_length" in settings:
        out["max_seq_length"] = int(settings["max_seq_length"])
    if problems:
        out["unsupported"] = "; ".join(problems)
    return out


def model_recipe(pipeline: dict | None, model_name: str) -> str:
    """The compact recipe that computes the stored pipeline's embedding (the last layer, as st does)."""
    if not pipeline:
        raise HsError(f"-r model: model {model_name!r} had no sentence-transformers pipeline (modules.json) "
                      f"when it was dumped; give the recipe explicitly, e.g. -r 'layers=last;pool=mean'")
    if pipeline.get("unsupported"):
        raise HsError(f"-r model: the pipeline of {model_name!r} cannot be reproduced from hidden states "
                      f"({pipeline['unsupported']}); give the recipe explicitly")
    pool = dict(POOLING_FLAGS.values())[pipeline["pooling"]]
    return f"layers=last;pool={pool};drop=none;weights=none;post={'l2' if pipeline['normalize'] else 'none'}"
