"""The model and tokenizer a fitted recipe belongs to: found, loaded and checked against the identity
the store recorded (hsstore/dump/model.py names models the same way for stores)."""
from __future__ import annotations

from pathlib import Path

from hsstore.dump import model as model_mod
from hsstore.errors import HsError, StoreError
from hsstore.format.digests import model_differences

TOKENIZER_DIR = "tokenizer"  # in a fitted folder


def _describe(identity: dict) -> str:
    weights = identity.get("weights_sha256") or identity.get("revision") or "?"
    return f"{identity.get('name')!r} (weights {weights[:16]})"


def load_model(identity: dict, model: str | None = None):
    """The model of ``identity``: ``model`` (a short name, folder or hub name) if given, else the
    name or path the store recorded. Another model than the store's is refused."""
    candidates = [model] if model else list(dict.fromkeys(c for c in (identity.get("name"), identity.get("path")) if c))
    error = None
    for name in candidates:
        try:
            loaded = model_mod.load(name)
            break
        except HsError as exc:
            error = exc
    else:
        raise HsError(f"{error}; give the model the recipe was fitted for with --model (Encoder.load(..., model=))")
    model_mod.match_stored_config(loaded, [identity])  # a store an older hs made hashed the model's path too
    differ = model_differences(loaded.identity, identity)
    if differ:
        why = (" (its digest covers the transformers version too: was transformers upgraded since the fit?)"
               if differ == ["config_sha256"] else "")
        raise HsError(f"model {loaded.identity['name']!r} is not the model the recipe was fitted for, "
                      f"{_describe(identity)}: it differs in {', '.join(differ)}{why}; give that model")
    return loaded


def model_tokenizer(identity: dict, model: str | None = None):
    """The fast tokenizer of the store's model (for ``hs fit`` to copy), checked by its digest."""
    import transformers  # transformers loads only when a tokenizer does (not for `hs --help`)

    transformers.logging.set_verbosity_error()
    names = [model] if model else list(dict.fromkeys(c for c in (identity.get("name"), identity.get("path")) if c))
    for name in names:
        try:
            path = model_mod.resolve_model_path(name)
        except HsError:
            continue
        if not Path(path).exists():
            continue
        source = {"pretrained_model_name_or_path": path}
        if path.endswith(".gguf"):  # a GGUF file: its tokenizer is read from the file, as load() reads it
            source = {"pretrained_model_name_or_path": str(Path(path).parent), "gguf_file": Path(path).name}
        tokenizer = transformers.AutoTokenizer.from_pretrained(**source)
        if model_mod.tokenizer_digest(tokenizer) != identity.get("tokenizer_sha256"):
            raise HsError(f"the tokenizer of {name!r} is not the one the store was dumped with ({_describe(identity)}); "
                          f"give the store's model with --model")
        return tokenizer
    raise HsError(f"hs fit copies the model's tokenizer into the folder, and the store's model {_describe(identity)} "
                  f"is not found here; give its folder with --model")


def folder_tokenizer(folder: Path, identity: dict):
    """The tokenizer a fitted folder carries, checked against the model identity it records."""
    import transformers  # transformers loads only when a tokenizer does (not for `hs --help`)

    transformers.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(Path(folder) / TOKENIZER_DIR))
    if model_mod.tokenizer_digest(tokenizer) != identity.get("tokenizer_sha256"):
        raise StoreError(f"the tokenizer in {folder} is not the model's it records ({_describe(identity)}); fit again")
    return tokenizer
