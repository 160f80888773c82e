"""Results in MTEB's terms: its score keys and 0-1 scale (each family declares its keys), its task
names where hs's data and protocol are MTEB's, and its results layout (``--mteb-dir``)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from hsstore.published import hub_name
from hsstore.tasks import MTEB_NAMES
from hsstore.tasks.registry import data_digest as task_data_digest
from hsstore.version import __version__

from ..evaluation.registry import family_of
from ..recipes.recipe import Recipe
from .result import Result


def plain(value):
    """numpy scalars as Python numbers, inside dicts too (for JSON)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def split_name(r: Result) -> str:
    """The split a result's scores are filed under: ``all`` for cross-validation on one split, else ``test``."""
    return "all" if r.task.protocol == "cv" else "test"


def mteb_scores(r: Result) -> dict:
    """The scores MTEB reports for this result, under MTEB's key names and on its 0-1 scale."""
    family = family_of(r.task)
    scores = plain(r.scores)
    out = {mteb: scores[hs] / 100 for hs, names in family.mteb_keys.items() if hs in scores for mteb in names}
    out["main_score"] = out[family.mteb_main] if family.mteb_main else scores["main_score"] / 100
    return out


def mteb_name(r: Result, options: dict) -> tuple[str, str] | None:
    """MTEB's (task name, subset) when both the data and the protocol are MTEB's, else None."""
    name = MTEB_NAMES.get(r.task.id)
    if name is None:
        return None
    if any(options.get(k) != v for k, v in family_of(r.task).mteb_protocol.items()):
        return None  # e.g. SentEval's protocol on MTEB's data: not MTEB's figure
    return name


def _slug(text: str) -> str:
    """A folder-safe, readable form of a model name or recipe."""
    return re.sub(r"[^A-Za-z0-9.+=,_-]+", "-", text.replace(";", ",")).strip("-")


# the MTEB release whose results layout these files follow (tests/test_ecosystem.py loads them with mteb)
MTEB_VERSION = "2.26.0"


def mteb_model_meta(store, recipe: Recipe, dim: int | None) -> dict:
    """model_meta.json (MTEB's ModelMeta fields): named from the store's model and the recipe, the
    revision the store's identity; the model referred to by its hub name (never the local folder hs
    read it from); the whole recipe, the store and hs's version in ``loader_kwargs``."""
    model = store.model
    hub = hub_name(model)
    base = hub.rsplit("/", 1)[-1] if hub else Path(model["name"]).name
    return {
        "name": f"hs/{_slug(base)}__{_slug(str(recipe))}",
        "revision": store.identity,
        "release_date": None, "languages": ["eng-Latn"], "n_parameters": None, "memory_usage_mb": None,
        "max_tokens": store.settings.get("max_length"), "embed_dim": dim, "license": None, "open_weights": None,
        "public_training_code": None, "public_training_data": None, "framework": ["PyTorch"],
        "reference": f"https://huggingface.co/{hub}" if hub else None, "similarity_fn_name": "cosine",
        "use_instructions": False, "training_datasets": None, "adapted_from": hub, "modalities": ["text"],
        # what builds the embedding from the stored states; not experiment_kwargs, with which
        # mteb.ResultCache files the model as another experiment and loads none of its results
        "model_type": ["dense"], "loader": None,
        "loader_kwargs": {"hs_recipe": str(recipe), "hs_store_identity": store.identity,
                          "hs_model_weights_sha256": model.get("weights_sha256"), "hs_version": __version__},
    }


def write_mteb_dir(results: list[Result], store, root: Path, options: dict) -> tuple[list[Path], list[str]]:
    """MTEB's results layout under ``root`` (a ``mteb.ResultCache`` folder):
    ``results/<model>/<revision>/<TaskName>.json`` plus ``model_meta.json``, one folder per recipe.

    Returns the files written and the hs tasks left out (not MTEB's data or protocol)."""
    written, skipped = [], []
    for r in results:
        name = mteb_name(r, options)
        if name is None:
            skipped.append(r.task.id)
            continue
        meta = mteb_model_meta(store, r.recipe, r.dim)
        folder = root / "results" / meta["name"].replace("/", "__") / meta["revision"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model_meta.json").write_text(json.dumps(meta, indent=2))
        record = {"dataset_revision": f"hs-data:{task_data_digest(r.task.dataset)}", "task_name": name[0],
                  "mteb_version": MTEB_VERSION, "hs_recipe": str(r.recipe),  # mteb reads past the hs_ key
                  "scores": {split_name(r): [{"hf_subset": name[1], "languages": ["eng-Latn"], **mteb_scores(r)}]},
                  "evaluation_time": r.seconds, "kg_co2_emissions": None}
        path = folder / f"{name[0]}.json"
        path.write_text(json.dumps(record, indent=2))
        written.append(path)
    return written, sorted(set(skipped))
