"""Where the models behind hs's short names are published: their Hugging Face hub names, for results
that must name a model by something other than the local folder hs read it from (MTEB's
``model_meta.json``). tests/test_what_users_see.py checks that every short name of the dump has one."""
from __future__ import annotations

HUB_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2",
             "mpnet": "sentence-transformers/all-mpnet-base-v2",
             "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def hub_name(model: dict) -> str | None:
    """The hub name of a store's model (``store.model``): a short name's published model, or the name
    ``hs dump --model`` was given when the model came from the hub (it then has a hub revision);
    None for a local folder or file, which names no published model."""
    name = model.get("name") or ""
    if name in HUB_NAMES:
        return HUB_NAMES[name]
    return name if model.get("revision") else None
