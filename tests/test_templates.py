"""Templated dumps and attention diagonals, each checked against the tokenizer or a direct forward pass."""
from __future__ import annotations

import json
import signal
import time
from functools import lru_cache

import numpy as np
import pytest
import torch

import hsstore
from hsstore import HsError
from hsstore.dump.sources import CorpusSource
from hsstore.dump.run import run_dump
from hsstore.format.layout import KIND_MASK, KIND_SPECIAL, KIND_TEMPLATE, KIND_TEXT
from hsstore.dump.model import load
from hsstore.tasks.templates import TEMPLATES, parse_template
from hsstore.dump.templated import position_base, templated_ids
from hsstore.dump.sources import with_templates

from conftest import SENTENCES
from families import build_family

# no punctuation at the end, so no byte-level BPE merge crosses the sentence's closing quote
PLAIN = ["A man is playing a guitar", "Stocks fell sharply on Tuesday", "the cat sat on the mat", "Zebras run"]


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f: load(str(build_family(f, root / f))) for f in ("bert", "roberta", "gpt2")}


def joined(tokenizer, template, text):
    """The template filled in as one string and tokenized at once (the mask token takes the space before it)."""
    filled = template.text.replace("[X]", text).replace(" [MASK]", tokenizer.mask_token or "")
    return tokenizer(filled)


@pytest.mark.parametrize("family,name", [("bert", "promptbert"), ("roberta", "promptbert"), ("gpt2", "prompteol"),
                                         ("bert", "prompteol"), ("roberta", "promptbert-of")])
def test_kinds_and_readout_slot(families, family, name):
    tok = families[family].tokenizer
    template = TEMPLATES[name]
    _, rows = templated_ids(tok, template, PLAIN, 64)
    for text, (ids, kinds, k, cut) in zip(PLAIN, rows):
        ref = joined(tok, template, text)
        assert ids == ref["input_ids"], (family, text, tok.convert_ids_to_tokens(ids))
        kinds = np.asarray(kinds)
        # the frame the tokenizer adds around a text ([CLS] ... [SEP]); the mask token is no part of it
        special = np.asarray(tok.get_special_tokens_mask(ref["input_ids"], already_has_special_tokens=True), bool)
        special &= np.asarray(ref["input_ids"]) != tok.mask_token_id
        assert np.array_equal(kinds == KIND_SPECIAL, special)
        sentence = tok(text, add_special_tokens=False)["input_ids"]
        assert not cut and k == len(sentence) == (kinds == KIND_TEXT).sum()
        text_at = np.flatnonzero(kinds == KIND_TEXT)
        assert [ids[i] for i in text_at] == sentence and np.all(np.diff(text_at) == 1)
        assert (kinds == KIND_MASK).sum() == 1
        slot = int(np.flatnonzero(kinds == KIND_MASK)[0])
        if template.readout == "mask":
            assert ids[slot] == tok.mask_token_id and ids.count(tok.mask_token_id) == 1
        else:  # the last token that is not special
            assert slot == int(np.flatnonzero(~special)[-1])
        assert set(kinds[~special & (kinds != KIND_TEXT) & (kinds != KIND_MASK)]) <= {KIND_TEMPLATE}


def test_mask_template_refused_without_mask_token(families, tmp_path):
    with pytest.raises(HsError, match="no mask token"):
        templated_ids(families["gpt2"].tokenizer, TEMPLATES["promptbert"], PLAIN, 64)


def test_user_templates_and_bad_ones():
    mine = parse_template("In short, [X] is about [MASK] .")
    assert mine.readout == "mask" and mine.name.startswith("t") and mine.name == parse_template(mine.text).name
    for bad in ("no slot here", "[X] and [X]", "[X] [MASK] [MASK]", "a~b [X]"):
        with pytest.raises(HsError):
            parse_template(bad)
    with pytest.raises(HsError, match="must come after"):
        templated_ids(_bert_like(), parse_template("[MASK] [X]"), ["x"], 64)


def _bert_like():
    from transformers import BertTokenizerFast

    from conftest import _vocab
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(_vocab())}, do_lower_case=True)


def test_truncation_cuts_the_sentence_not_the_template(families):
    tok = families["roberta"].tokenizer
    template = TEMPLATES["promptbert"]
    long_text = " ".join(SENTENCES * 4)
    _, [(ids, kinds, k, cut)] = templated_ids(tok, template, [long_text], 24)
    full = tok(long_text, add_special_tokens=False)["input_ids"]
    assert cut and len(ids) == 24 and k == (np.asarray(kinds) == KIND_TEXT).sum()
    short = joined(tok, template, tok.decode(full[:k]))["input_ids"]
    assert ids == short  # the template whole, the sentence's first k tokens
    with pytest.raises(HsError, match="no room"):
        templated_ids(tok, template, [long_text], 12)


@pytest.fixture(scope="module")
def templated_store(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("tpl") / "store"
    sources = with_templates([CorpusSource("mine", list(SENTENCES), {})], ["none", "promptbert"])
    run_dump(str(tiny_model), sources, out, batch_tokens=256, progress=False, log=lambda m: None,
             attention_diagonals=True)
    return out


@lru_cache(maxsize=4)
def reference_model(model_dir, eager: bool):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(model_dir), attn_implementation="eager" if eager else None).eval()


def direct(model_dir, ids, position_ids=None, eager=False):
    """A plain transformers forward pass of one unpadded sequence.

    The all-ones attention mask is explicit: without one, transformers >= 5.25 reads a jump in
    ``position_ids`` as the start of a packed second sequence and masks attention across it."""
    model = reference_model(model_dir, eager)
    with torch.no_grad():
        extra = {} if position_ids is None else {"position_ids": torch.tensor([position_ids])}
        return model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                     output_hidden_states=True, output_attentions=eager, **extra)


def test_stored_mask_state_equals_direct_forward(templated_store, tiny_model):
    corpus = hsstore.open(templated_store).corpus("mine~promptbert")
    assert corpus.attrs["source"]["template"]["name"] == "promptbert"
    for i in range(corpus.n_sentences):
        ids = corpus.token_ids(i).tolist()
        slot = corpus.token_kinds(i).index("mask")
        out = direct(tiny_model, ids)
        want = np.stack([h[0, slot].numpy() for h in out.hidden_states])
        got = corpus.hidden(i)[:, slot]
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


def test_empty_rows_follow_promptbert_positions(templated_store, tiny_model):
    store = hsstore.open(templated_store)
    variant, empty = store.corpus("mine~promptbert"), store.corpus("mine~promptbert~empty")
    kinds = variant.all_token_kinds
    lengths = sorted({int((kinds[a:b] == KIND_TEXT).sum())
                      for a, b in zip(variant.offsets[:-1], variant.offsets[1:])})
    assert empty.attrs["source"]["sentence_lengths"] == lengths and empty.n_sentences == len(lengths)
    positions = np.asarray(empty.raw("position_ids")[:])
    for i, k in enumerate(lengths):
        ids = empty.token_ids(i).tolist()
        assert (np.asarray(empty.token_kinds(i)) == "text").sum() == 0
        prefix = 1 + len(_bert_like()('This sentence : "', add_special_tokens=False)["input_ids"])
        want_pos = list(range(prefix)) + [p + k for p in range(prefix, len(ids))]
        assert positions[empty.offsets[i]:empty.offsets[i + 1]].tolist() == want_pos
        out = direct(tiny_model, ids, want_pos)
        np.testing.assert_allclose(empty.hidden(i), np.stack([h[0].numpy() for h in out.hidden_states]),
                                   rtol=2e-3, atol=2e-3)
    # the shifted mask sits where a k-token sentence puts it
    slot_real = [variant.token_kinds(i).index("mask") for i in range(variant.n_sentences)]
    k_real = [variant.token_kinds(i).count("text") for i in range(variant.n_sentences)]
    slot_empty = empty.token_kinds(0).index("mask")
    for s, k in zip(slot_real, k_real):
        row = lengths.index(k)
        assert positions[empty.offsets[row] + slot_empty] == s


def test_position_base_matches_model_default(families):
    for family in ("bert", "roberta"):
        loaded = families[family]
        ids = loaded.tokenizer("hello world")["input_ids"]
        base = position_base(loaded.model)
        with torch.no_grad():
            a = loaded.model(input_ids=torch.tensor([ids])).last_hidden_state
            b = loaded.model(input_ids=torch.tensor([ids]),
                             position_ids=torch.from_numpy(base + np.arange(len(ids)))[None]).last_hidden_state
        assert torch.equal(a, b), family
        if family == "roberta":
            assert base == loaded.model.config.pad_token_id + 1


def test_stored_diagonals_equal_output_attentions(templated_store, tiny_model):
    from hsstore.store.attention import read_diagonal

    for name in ("mine", "mine~promptbert"):
        corpus = hsstore.open(templated_store).corpus(name)
        assert tuple(corpus.raw("attention_diagonal").metadata.dimension_names) == ("attention_layer", "token", "head")
        for i in range(corpus.n_sentences):
            out = direct(tiny_model, corpus.token_ids(i).tolist(), eager=True)
            span = slice(int(corpus.offsets[i]), int(corpus.offsets[i + 1]))
            for layer, att in enumerate(out.attentions, start=1):
                for head in range(att.shape[1]):
                    want = torch.diagonal(att[0, head]).numpy()
                    got = read_diagonal(corpus, layer, head)[span]
                    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)
    with pytest.raises(HsError, match="heads are 0..1"):
        read_diagonal(corpus, 1, 2)


def test_diagonals_missing_is_one_line_error(tiny_store):
    from hsstore.store.attention import read_diagonal

    with pytest.raises(HsError, match="--attention-diagonals"):
        read_diagonal(hsstore.open(tiny_store).corpus("mine"), 1, 0)


def test_export_keeps_positions_and_diagonals(templated_store, tmp_path):
    from hsstore.store.export import export_hdf5

    store = hsstore.open(templated_store)
    export_hdf5(store, tmp_path / "s.h5", progress=False)
    h5 = hsstore.open(tmp_path / "s.h5")
    for name, part in (("mine~promptbert~empty", "position_ids"), ("mine~promptbert", "attention_diagonal")):
        a, b = np.asarray(store.corpus(name).raw(part)[:]), np.asarray(h5.corpus(name).raw(part)[:])
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert h5.corpus("mine~promptbert").token_kinds(0) == store.corpus("mine~promptbert").token_kinds(0)


def test_sigkilled_templated_dump_resumes_byte_identical(tmp_path, tiny_model):
    from hsstore.tasks import get_task
    from test_dump_cli import hs_cmd, snapshot

    corpus = tmp_path / "wiki.txt"
    corpus.write_text("\n".join(get_task("wikitext2").texts()[:400]) + "\n")
    args = ["dump", "--model", str(tiny_model), "--corpus-file", str(corpus), "--template", "promptbert",
            "--attention-diagonals", "--batch-tokens", "512", "--chunk-tokens", "1024", "-q"]
    clean = hs_cmd(*args, "--out", str(tmp_path / "clean"))
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    meta = tmp_path / "killed/corpora/wiki~promptbert/zarr.json"
    total = json.loads((tmp_path / "clean/corpora/wiki~promptbert/zarr.json").read_text())["attributes"]["n_batches"]

    def committed():
        try:
            return json.loads(meta.read_text())["attributes"]["committed_batches"]
        except (OSError, ValueError, KeyError):
            return 0

    proc = hs_cmd(*args, "--out", str(tmp_path / "killed"), env={"HS_FAULT_BATCH_DELAY": "0.02"})
    deadline = time.time() + 120
    while committed() < total // 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < committed() < total
    resumed = hs_cmd(*[a for a in args if a != "-q"], "--out", str(tmp_path / "killed"))  # -q: no resume line
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resuming at batch" in err, err
    for name in ("wiki~promptbert", "wiki~promptbert~empty"):
        a = snapshot(tmp_path / "clean/corpora" / name)
        assert a == snapshot(tmp_path / "killed/corpora" / name), name
        assert any(k.startswith("attention_diagonal/c") for k in a)


# ---- read-outs (analysis/prompts.py) against direct forward passes ------------------------------

def _prefix_len() -> int:
    return 1 + len(_bert_like()('This sentence : "', add_special_tokens=False)["input_ids"])


def test_mask_readout_and_denoising_equal_direct_computation(templated_store, tiny_model):
    from analysis.embedding.kernels import pool_states
    from analysis.embedding.prompts import denoise, slot_weights

    store = hsstore.open(templated_store)
    corpus, empty = store.corpus("mine~promptbert"), store.corpus("mine~promptbert~empty")
    for layer in (1, 3):
        X = pool_states(corpus.layer(layer), [1.0], corpus.offsets, slot_weights(corpus), "mean")
        D = denoise(X, corpus, empty.layer(layer))
        for i in range(corpus.n_sentences):
            ids = corpus.token_ids(i).tolist()
            slot = ids.index(4)  # [MASK] is id 4 in the tiny vocabulary
            state = direct(tiny_model, ids).hidden_states[layer][0, slot].numpy()
            np.testing.assert_allclose(X[i], state, rtol=2e-3, atol=2e-3)
            # PromptBERT's delta: the template alone, positions after the prefix raised by the sentence's length
            k = corpus.token_kinds(i).count("text")
            template_only = ids[:_prefix_len()] + ids[_prefix_len() + k:]
            positions = list(range(_prefix_len())) + [p + k for p in range(_prefix_len(), len(template_only))]
            delta = direct(tiny_model, template_only, positions).hidden_states[layer][0, slot - k].numpy()
            np.testing.assert_allclose(D[i], state - delta, rtol=2e-3, atol=4e-3)


def test_kind_filters_and_ditto_weights_equal_numpy(templated_store, tiny_model):
    from analysis.embedding.kernels import pool_states
    from analysis.embedding.prompts import ditto_weights, kind_weights

    store = hsstore.open(templated_store)
    corpus = store.corpus("mine~promptbert")
    only = pool_states(corpus.layer(3), [1.0], corpus.offsets, kind_weights(corpus, (KIND_TEXT,)), "mean")
    ditto = pool_states(corpus.layer(3), [1.0], corpus.offsets, ditto_weights(corpus, 1, 1), "mean")
    for i in range(corpus.n_sentences):
        out = direct(tiny_model, corpus.token_ids(i).tolist(), eager=True)
        h = out.hidden_states[3][0].numpy()
        text = np.asarray(corpus.token_kinds(i)) == "text"
        np.testing.assert_allclose(only[i], h[text].mean(0), rtol=2e-3, atol=2e-3)
        a = torch.diagonal(out.attentions[0][0, 1]).numpy()  # attention layer 1 = block 1, head 1
        np.testing.assert_allclose(ditto[i], (a[:, None] * h).sum(0) / a.sum(), rtol=3e-3, atol=3e-3)


def test_readouts_on_a_plain_corpus_are_one_line_errors(tiny_store):
    from analysis.embedding.prompts import empty_corpus, slot_weights

    plain = hsstore.open(tiny_store).corpus("mine")
    with pytest.raises(HsError, match="--template"):
        slot_weights(plain)
    with pytest.raises(HsError, match="--template"):
        empty_corpus(plain)


def test_recipe_steps_equal_direct_computation(templated_store, tiny_model):
    """view=prompt, pool=mask[:denoise=yes], drop=template and weights=ditto through the pooler."""
    from analysis.embedding.pooling import Pooler
    from analysis.recipes.recipe import parse_recipe

    store = hsstore.open(templated_store)
    plain, variant = store.corpus("mine"), store.corpus("mine~promptbert")
    pooler = Pooler(store, disk_cache=False)
    embed = lambda text: pooler.embed(plain, parse_recipe(text))  # noqa: E731
    mask = embed("view=prompt:template=promptbert;layers=3;pool=mask")
    denoised = embed("view=prompt;layers=3;pool=mask:denoise=yes")
    only = embed("view=prompt;layers=3;drop=special+template")
    ditto = embed("layers=2;weights=ditto:layer=2:head=0")
    for i, text in enumerate(plain.texts):
        j = variant.ids_of([text])[0]  # rows come back in the plain corpus's order
        ids = variant.token_ids(j).tolist()
        kinds = np.asarray(variant.token_kinds(j))
        h = direct(tiny_model, ids).hidden_states[3][0].numpy()
        slot, k = int(np.flatnonzero(kinds == "mask")[0]), int((kinds == "text").sum())
        np.testing.assert_allclose(mask[i], h[slot], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(only[i], h[kinds == "text"].mean(0), rtol=2e-3, atol=2e-3)
        n = _prefix_len()
        alone = ids[:n] + ids[n + k:]
        delta = direct(tiny_model, alone, list(range(n)) + [p + k for p in range(n, len(alone))])
        np.testing.assert_allclose(denoised[i], h[slot] - delta.hidden_states[3][0, slot - k].numpy(),
                                   rtol=2e-3, atol=4e-3)
        out = direct(tiny_model, plain.token_ids(i).tolist(), eager=True)
        a, g = torch.diagonal(out.attentions[1][0, 0]).numpy(), out.hidden_states[2][0].numpy()
        np.testing.assert_allclose(ditto[i], (a[:, None] * g).sum(0) / a.sum(), rtol=3e-3, atol=3e-3)


def test_recipe_step_errors_are_one_line(templated_store, tiny_store):
    from analysis.embedding.pooling import Pooler
    from analysis.recipes.recipe import parse_recipe

    store = hsstore.open(templated_store)
    cases = [(store, "pool=mask", "view=prompt"), (store, "view=prompt:template=prompteol", "--template prompteol"),
             (hsstore.open(tiny_store), "weights=ditto", "--attention-diagonals")]
    for st, recipe, message in cases:
        with pytest.raises(HsError, match=message):
            Pooler(st, disk_cache=False).embed(st.corpus("mine"), parse_recipe(recipe))


@pytest.mark.parametrize("damaged", ["mine~promptbert", "mine~promptbert~empty"])
def test_a_damaged_variant_misses_the_warm_cache(templated_store, tmp_path, monkeypatch, damaged):
    """A prompt read-out cached on disk is not served once the variant's (or the template-only rows')
    chunk files change: the recompute meets the checksum error."""
    import shutil

    from analysis.embedding.pooling import Pooler
    from analysis.recipes.recipe import parse_recipe
    from hsstore.errors import StoreError

    monkeypatch.setenv("HS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "store"
    shutil.copytree(templated_store, copy)
    recipe = parse_recipe("view=prompt;layers=3;pool=mask:denoise=yes")
    store = hsstore.open(copy)
    Pooler(store).embed(store.corpus("mine"), recipe)  # warm the disk cache
    chunk = sorted((copy / "corpora" / damaged / "hidden" / "c").rglob("*"))
    chunk = [p for p in chunk if p.is_file()][-1]
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0x40
    chunk.write_bytes(bytes(data))
    store = hsstore.open(copy)
    with pytest.raises(StoreError, match="checksum"):
        Pooler(store).embed(store.corpus("mine"), recipe)
