"""Shared fixtures: a tiny randomly initialised BERT (built here, no download) and stores made with it."""
from __future__ import annotations

import collections
import os
import re
import string
from pathlib import Path

import pytest

# the suite keeps its own caches (tests/.cache), never the user's HS_CACHE or home
os.environ["HS_CACHE"] = str(Path(__file__).resolve().parent / ".cache")

from hsstore.tasks import get_task  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab(n_words: int = 1500) -> list[str]:
    counts = collections.Counter()
    for task in ("sts17", "biosses", "wikitext2"):
        for text in get_task(task).texts():
            counts.update(re.findall(r"[a-z]+", text.lower()))
    words = [w for w, _ in counts.most_common(n_words)]
    chars = list(string.ascii_lowercase + string.digits)
    return list(dict.fromkeys(SPECIALS + list(string.punctuation) + chars + [f"##{c}" for c in chars] + words))


def build_tiny_model(path: Path, seed: int = 0, layers: int = 3, hidden: int = 32) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True, model_max_length=64)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    model = BertModel(config).eval()
    with torch.no_grad():  # random LayerNorm gains and biases, so token norms differ across layers
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                param.copy_(torch.randn_like(param) * 0.5 + (1.0 if name.endswith("weight") else 0.0))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def other_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "other", seed=1)


SENTENCES = [
    "A man is playing a guitar.",
    "The cat sat on the mat, didn't it?",
    "Stocks fell sharply on Tuesday after the announcement.",
    "Hello!",
    "A woman is slicing an onion in the kitchen while the radio plays an old song about the sea.",
    "Zebras run.",
]


@pytest.fixture(scope="session")
def sentences_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "mine.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_model, sentences_file) -> Path:
    """A store of the tiny model holding two STS tasks, WikiText-2 and a small user corpus."""
    from hsstore.dump.sources import CorpusSource
    from hsstore.dump.run import run_dump

    out = tmp_path_factory.mktemp("stores") / "tiny"
    sources = [CorpusSource(t, get_task(t).texts(), {"task": t}) for t in ("sts17", "biosses", "wikitext2")]
    sources.append(CorpusSource("mine", list(SENTENCES), {"file": str(sentences_file)}))
    run_dump(str(tiny_model), sources, out, batch_tokens=1024, progress=False, log=lambda m: None)
    return out
