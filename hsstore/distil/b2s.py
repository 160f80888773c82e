"""BERT2Static (Gupta & Jaggi, ACL 2021, "Obtaining Better Static Word Embeddings Using Contextual
Embedding Models"; X2Static_sent), trained from a reference corpus's stored states on the CPU.

The objective is CBOW's with negative sampling, the context being the contextual model's view of
the sentence: for a sentence S, its context vector c_S is the mean of the model's last-layer
states over all of S's tokens, special tokens included, computed without masking (the authors'
``learn_from_bert_ver2.py``: "no masking at all in this version"), so a plain dump holds every
context. Each target t of S (a token of S's text, kept with probability min(1, sqrt(T/f) + T/f),
f its relative frequency) is pushed towards c_S and ``negatives`` tokens drawn with probability
proportional to sqrt(count) away from it:

    loss = mean_t log(1 + exp(-clamp(c_S . v_t))) + sum_k mean_t log(1 + exp(clamp(c_S . v_nk)))

clamped to [-20, 20], v initialised uniformly in +-1/H, SparseAdam (lr 1e-3), 128 sentences a batch,
10 negatives, T = 5e-6, one epoch: the hyper-parameters of the authors' published command.

One difference of unit: the authors' targets are whitespace words of a vocabulary of words seen at
least 10 times; here they are the model's own tokens (the stored token ids of the text, special
tokens excluded) seen at least ``min_count`` times in the corpus, so the table is a (vocab, hidden)
token table like hs's other static views. Tokens below ``min_count`` get no vector (zeros, and the
view leaves them out of sentences as the method leaves out-of-vocabulary words out).
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from hsstore.errors import HsError
from hsstore.format import storage
from hsstore.format.layout import KIND_TEXT
from hsstore.store import b2s as tables
from hsstore.store.reader import Store

CLAMP = 20.0


@dataclass(frozen=True)
class Settings:
    layer: int = -1  # the context layer (the authors': the last)
    epochs: int = 1
    lr: float = 1e-3
    batch: int = 128  # sentences per step
    negatives: int = 10
    t: float = 5e-6  # subsampling threshold
    min_count: int = 10
    seed: int = 0


def context_vectors(corpus, layer: int, block_tokens: int = 1 << 16) -> np.ndarray:
    """(sentences, hidden) float32: each sentence's mean state of ``layer`` over all its tokens, read a
    block of whole sentences at a time."""
    offsets = corpus.offsets
    out = np.zeros((corpus.n_sentences, corpus.store.hidden_size), dtype=np.float32)
    s0 = 0
    while s0 < corpus.n_sentences:
        s1 = max(s0 + 1, int(np.searchsorted(offsets, offsets[s0] + block_tokens, side="right")) - 1)
        s1 = min(s1, corpus.n_sentences)
        t0, t1 = int(offsets[s0]), int(offsets[s1])
        rows = corpus.layer_rows(layer, t0, t1).astype(np.float64)
        sums = np.add.reduceat(rows, (offsets[s0:s1] - t0).astype(np.int64), axis=0)
        out[s0:s1] = sums / np.diff(offsets[s0:s1 + 1])[:, None]
        s0 = s1
    return out


@dataclass
class Targets:
    """The corpus's text tokens that may be targets, with what sampling needs."""
    ids: np.ndarray  # (N,) int64 token ids of the text tokens in the vocabulary
    sentence: np.ndarray  # (N,) int64 their sentence
    keep: np.ndarray  # (V,) float64 probability of keeping a target (1 - the authors' rejection probability)
    noise: np.ndarray  # (V,) float64 negative-sampling distribution, proportional to sqrt(count)
    trained: np.ndarray  # (V,) bool the ids with a vector


def targets(corpus, vocab_size: int, settings: Settings) -> Targets:
    ids = corpus.all_token_ids.astype(np.int64)
    text = corpus.all_token_kinds == KIND_TEXT
    sentence = np.repeat(np.arange(corpus.n_sentences), np.diff(corpus.offsets))
    counts = np.bincount(ids[text], minlength=vocab_size)
    trained = counts >= settings.min_count
    if not trained.any():
        raise HsError(f"no token of corpus {corpus.name!r} occurs {settings.min_count} times; lower --min-count "
                      f"or train on a larger corpus")
    kept_counts = np.where(trained, counts, 0)
    freq = kept_counts / kept_counts.sum()
    with np.errstate(divide="ignore"):
        ratio = np.where(trained, settings.t / np.where(trained, freq, 1.0), 0.0)
    keep = np.minimum(1.0, np.sqrt(ratio) + ratio)
    noise = np.sqrt(kept_counts)
    mask = text & trained[ids]
    return Targets(ids[mask], sentence[mask], keep, noise / noise.sum(), trained)


def clamped_logistic(scores):
    """The authors' ll_loss: mean of log(1 + exp(-clamp(s, -20, 20))) (torch)."""
    import torch  # torch loads when training starts, not with `hs --help`

    return torch.nn.functional.softplus(-torch.clamp(scores, min=-CLAMP, max=CLAMP)).mean()


def batch_loss(embedding, context, target_ids, negative_ids):
    """The loss of one batch: ``context`` (n, H) torch float32, ``target_ids`` (n,), ``negative_ids`` (k, n)."""
    loss = clamped_logistic((context * embedding(target_ids)).sum(dim=1))
    for row in negative_ids:
        loss = loss + clamped_logistic(-(context * embedding(row)).sum(dim=1))
    return loss


def train(corpus, settings: Settings, progress: bool = True) -> tuple[np.ndarray, dict]:
    """The table (vocab, hidden) float32 and what training measured."""
    import torch  # torch loads when training starts, not with `hs --help`

    store = corpus.store
    vocab_size, hidden = len(store.vocab), store.hidden_size
    t_start = time.perf_counter()
    contexts = torch.from_numpy(context_vectors(corpus, settings.layer))
    tg = targets(corpus, vocab_size, settings)
    t_contexts = time.perf_counter() - t_start
    threads = torch.get_num_threads()
    # one thread: each step is small (a few thousand rows), where threads only contend for the cores
    # (5x slower with two on two shared cores), and one thread makes the table the same on any machine
    torch.set_num_threads(1)
    try:
        return _train(corpus, settings, progress, contexts, tg, t_start, t_contexts, vocab_size, hidden)
    finally:
        torch.set_num_threads(threads)


def _train(corpus, settings: Settings, progress: bool, contexts, tg: Targets, t_start: float, t_contexts: float,
           vocab_size: int, hidden: int) -> tuple[np.ndarray, dict]:
    import torch  # torch loads when training starts, not with `hs --help`

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    embedding = torch.nn.Embedding(vocab_size, hidden, sparse=True)
    with torch.no_grad():
        embedding.weight.uniform_(-1.0 / hidden, 1.0 / hidden)
    optimizer = torch.optim.SparseAdam(embedding.parameters(), lr=settings.lr)
    starts = np.searchsorted(tg.sentence, np.arange(corpus.n_sentences + 1))  # targets of sentence s: starts[s]:starts[s+1]
    n_batches = -(-corpus.n_sentences // settings.batch)
    history = []
    bar = tqdm(total=settings.epochs * n_batches, unit="batch", desc=f"b2s {corpus.name}",
               disable=None if progress else True, file=sys.stderr, dynamic_ncols=True)
    try:
        for _ in range(settings.epochs):
            order = rng.permutation(corpus.n_sentences)
            total, n_targets = 0.0, 0
            for b in range(n_batches):
                sents = order[b * settings.batch:(b + 1) * settings.batch]
                pick = np.concatenate([np.arange(starts[s], starts[s + 1]) for s in sents])
                ids = tg.ids[pick]
                ids_kept = rng.random(len(ids)) < tg.keep[ids]  # subsampling of frequent tokens
                ids, rows = ids[ids_kept], tg.sentence[pick][ids_kept]
                if not len(ids):
                    bar.update()
                    continue
                negatives = rng.choice(vocab_size, size=(settings.negatives, len(ids)), p=tg.noise)
                optimizer.zero_grad()
                loss = batch_loss(embedding, contexts[rows], torch.from_numpy(ids), torch.from_numpy(negatives))
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(ids)
                n_targets += len(ids)
                bar.update()
                bar.set_postfix_str(f"loss {total / n_targets:.4f}", refresh=False)
            history.append({"targets": n_targets, "loss": total / max(1, n_targets)})
    finally:
        bar.close()
    table = embedding.weight.detach().numpy().astype(np.float32)
    table[~tg.trained] = 0.0
    measured = {"seconds": round(time.perf_counter() - t_start, 2), "context_seconds": round(t_contexts, 2),
                "epochs": history, "sentences": corpus.n_sentences, "trained_ids": int(tg.trained.sum())}
    return table, {"trained": np.flatnonzero(tg.trained).tolist(), "measured": measured}


def run(path, ref: str, settings: Settings, progress: bool = True, log=print) -> dict:
    """Train on ``ref`` and store the table in the store at ``path`` (under its writer lock)."""
    import zarr  # zarr loads for the write, not with `hs --help`

    path = storage.location(path)
    store = Store(path)
    if not store.is_zarr:
        raise HsError(f"{path} is an HDF5 export; hs b2s trains into the Zarr store it was exported from")
    corpus = store.corpus(ref)
    layer = settings.layer if settings.layer >= 0 else store.n_model_layers + 1 + settings.layer
    store.layer_position(layer)  # a layer the store lacks is an error now
    settings = Settings(**{**asdict(settings), "layer": layer})
    table, info = train(corpus, settings, progress)
    lock = storage.WriteLock.acquire(path)
    try:
        root = zarr.open_group(storage.zarr_store(path, "r+"), mode="r+")
        tables.write_table(root, path, ref, table, {"identity": store.identity, "ref_fingerprint": corpus.fingerprint,
                                                    "settings": asdict(settings), **info})
    finally:
        lock.release()
    log(f"b2s: trained on {ref} ({corpus.n_sentences} sentences, {info['measured']['trained_ids']} token ids with a "
        f"vector) in {info['measured']['seconds']:.1f} s; stored as b2s/{ref} in {path}")
    return info["measured"]
