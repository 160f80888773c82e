"""What names the stored states, and the digests that make a store's metadata self-checking.

- ``store_identity``: a hash of the model's identity and the dump settings (the root's ``identity``,
  in every cache key and results record);
- ``plan_fingerprint``: a hash of a corpus's plan (texts, token ids and kinds, offsets, batches) and
  the store identity (the corpus's ``fingerprint``); a reader recomputes it from the arrays it read;
- ``attrs_digest``: a hash of a group's attributes, recorded in the same ``zarr.json`` (key
  ``digest``) when hs writes them: an edit that leaves the JSON valid (a layer list reordered, a
  sentence length changed) no longer matches it, and a reader refuses the store. Attributes a
  commit moves (the watermark) are left out of a corpus's digest, so commits do not rewrite it;
- ``model_differences``: where two model identities differ in weights, configuration or tokenizer
  (names and paths may differ).

These are checks against accidents and tools, not against a forger: whoever rewrites data,
checksums, manifests and digests consistently is not detected (docs/reliability.md).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

DIGEST = "digest"
# a corpus's attributes that each commit moves (the watermark), and a shard's progress: not digested
WATERMARK = ("committed_batches", "committed_sentences", "committed_tokens", "hidden_chunks", "complete", "shard")
# what in a model's identity changes the numbers, besides its weights (or, without a weight hash, its name
# and hub revision)
MODEL_KEYS = ("architecture", "n_layers", "hidden_size", "vocab_size", "config_sha256", "tokenizer_sha256")


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def attrs_digest(attrs: dict, volatile: tuple[str, ...] = ()) -> str:
    """SHA-256 (32 hex digits) of ``attrs`` without the digest itself and the ``volatile`` keys."""
    kept = {k: v for k, v in attrs.items() if k != DIGEST and k not in volatile}
    return hashlib.sha256(_canonical(kept)).hexdigest()[:32]


def with_digest(attrs: dict, volatile: tuple[str, ...] = ()) -> dict:
    return {**attrs, DIGEST: attrs_digest(attrs, volatile)}


def digest_matches(attrs: dict, volatile: tuple[str, ...] = ()) -> bool:
    return attrs.get(DIGEST) == attrs_digest(attrs, volatile)


def store_identity(model: dict, settings: dict) -> str:
    """The root's ``identity``: the model's identity (what changes the numbers) and every dump setting."""
    keyed = {k: model.get(k) for k in ("architecture", "n_layers", "hidden_size", "vocab_size",
                                       "weights_sha256", "revision", "config_sha256", "tokenizer_sha256")}
    if not keyed["weights_sha256"]:
        keyed["name"] = model.get("name")
    blob = json.dumps({"model": keyed, "settings": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def plan_fingerprint(identity: str, texts: list[str], offsets, token_ids, token_kind, batch_ends,
                     position_ids=None, attention_shape=None, task_lines=None) -> str:
    """A corpus's ``fingerprint``: its plan's arrays and texts under the store identity."""
    h = hashlib.sha256(identity.encode())
    for arr in (offsets, token_ids, token_kind, batch_ends):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\n".join(texts).encode("utf-8"))
    if position_ids is not None:
        h.update(b"position_ids" + np.ascontiguousarray(position_ids).tobytes())
    if attention_shape is not None:  # eager attention, and one more array
        h.update(f"attention_diagonal{tuple(attention_shape)}".encode())
    if task_lines is not None:  # the task's definition: a changed task file is another corpus
        h.update(b"task\0" + "\n".join(task_lines).encode("utf-8"))
    return h.hexdigest()[:32]


def model_differences(a: dict, b: dict) -> list[str]:
    """The identity keys in which two models differ ([] for the same weights, configuration and
    tokenizer): the weight hash where either has one, else the name and hub revision."""
    keys = MODEL_KEYS + (("weights_sha256",) if a.get("weights_sha256") or b.get("weights_sha256")
                         else ("name", "revision"))
    return [k for k in keys if a.get(k) != b.get(k)]
