"""Tiny random models of each supported family, built in the test process (no download).

``build_family(name, path)`` saves a randomly initialised model and a fast tokenizer trained here
with the ``tokenizers`` library on a few hundred sentences from data/, laid out as the family's
real checkpoints are: BERT (WordPiece, [CLS] ... [SEP]), RoBERTa (byte-level BPE, <s> ... </s>),
MPNet (WordPiece, <s> ... </s>), a GPT-2-style decoder (byte-level BPE, no special tokens added,
no pad token) and a Llama-style decoder (byte-level BPE, <s> prepended, no pad token).
"""
from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

FAMILIES = ("bert", "roberta", "mpnet", "gpt2", "llama")
DECODERS = ("gpt2", "llama")
MAX_LENGTH = 64  # tokenizer limit; the models get a few positions more (RoBERTa/MPNet offset them by 2)


@lru_cache(maxsize=1)
def training_texts(n: int = 600) -> tuple[str, ...]:
    from hsstore.tasks import get_task

    texts: list[str] = []
    for task in ("sts17", "biosses", "wikitext2"):
        texts.extend(t for t in get_task(task).texts() if t.strip())
    return tuple(texts[:n])


def _wordpiece(specials: list[str], unk: str, first: str, last: str, vocab_size: int = 1200):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    alphabet = list(string.ascii_lowercase + string.digits + string.punctuation)  # so "!" is never [UNK]
    tok.train_from_iterator(training_texts(), trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", pair=f"{first} $A {last} $B:1 {last}:1",
        special_tokens=[(first, tok.token_to_id(first)), (last, tok.token_to_id(last))])
    return tok


def _byte_bpe(specials: list[str], vocab_size: int = 1200):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(training_texts(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def _tokenizer(family: str):
    """(fast tokenizer, its special-token ids by role) of a family."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    if family == "bert":
        specials = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
        raw = _wordpiece(list(specials.values()), "[UNK]", "[CLS]", "[SEP]")
    elif family == "mpnet":
        specials = dict(bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="[UNK]", cls_token="<s>",
                        sep_token="</s>", mask_token="<mask>")
        raw = _wordpiece(["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], "[UNK]", "<s>", "</s>")
    elif family == "roberta":
        specials = dict(bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>", cls_token="<s>",
                        sep_token="</s>", mask_token="<mask>")
        raw = _byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        raw.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    elif family == "gpt2":
        specials = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
        raw = _byte_bpe(["<|endoftext|>"])
    elif family == "llama":
        specials = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        raw = _byte_bpe(["<unk>", "<s>", "</s>"])
        raw.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", raw.token_to_id("<s>"))])
    else:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=MAX_LENGTH, **specials)
    return tok, {role: tok.convert_tokens_to_ids(t) for role, t in specials.items()}


def _config(family: str, vocab_size: int, ids: dict, layers: int, hidden: int):
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                  intermediate_size=2 * hidden)
    if family == "bert":
        return tf.BertConfig(max_position_embeddings=MAX_LENGTH, pad_token_id=ids["pad_token"], **common)
    if family == "roberta":
        return tf.RobertaConfig(max_position_embeddings=MAX_LENGTH + 2, pad_token_id=ids["pad_token"],
                                bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"], **common)
    if family == "mpnet":
        return tf.MPNetConfig(max_position_embeddings=MAX_LENGTH + 2, pad_token_id=ids["pad_token"],
                              bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"], **common)
    if family == "gpt2":
        return tf.GPT2Config(vocab_size=vocab_size, n_embd=hidden, n_layer=layers, n_head=2, n_positions=MAX_LENGTH,
                             bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"])
    return tf.LlamaConfig(max_position_embeddings=MAX_LENGTH, num_key_value_heads=1, bos_token_id=ids["bos_token"],
                          eos_token_id=ids["eos_token"], **common)


def build_family(family: str, path: Path, seed: int = 0, layers: int = 2, hidden: int = 32) -> Path:
    """Save a tiny random ``family`` model with its tokenizer in ``path`` (loadable with AutoModel)."""
    import torch
    import transformers

    tok, ids = _tokenizer(family)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    config = _config(family, len(tok), ids, layers, hidden)
    model = transformers.AutoModel.from_config(config).eval()
    with torch.no_grad():  # random norm gains and biases, so token norms differ across layers
        for name, param in model.named_parameters():
            if "norm" in name.lower() or ".ln_" in name:
                param.copy_(torch.randn_like(param) * 0.5 + (1.0 if name.endswith("weight") else 0.0))
    model.save_pretrained(path)
    return path
