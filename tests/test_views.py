"""Views (RE, input, Avg., GloVe), view mixes and the sentence-transformers poolings, each against
an independent numpy computation from the store's arrays or the model itself."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import hsstore
from analysis.embedding import views
from analysis.runners.engine import Engine
from analysis.embedding.pooling import Pooler
from analysis.recipes.recipe import parse_recipe
from hsstore import HsError
from hsstore.tasks import get_task


def mean_rows(table: np.ndarray, corpus, weights=None) -> np.ndarray:
    """Per sentence, the (weighted) mean of the table rows of its token ids, in float64."""
    out = []
    for i in range(corpus.n_sentences):
        ids = corpus.token_ids(i)
        w = np.ones(len(ids)) if weights is None else weights(corpus, i)
        out.append((w[:, None] * table[ids].astype(np.float64)).sum(0) / w.sum())
    return np.array(out)


def embed(store_path, text, corpus="sts17"):
    store = hsstore.open(store_path)
    return Pooler(store, disk_cache=False).embed(store.corpus(corpus), parse_recipe(text))


def test_re_is_deterministic_per_seed_and_differs_across_seeds(tiny_store):
    a, again, b = (embed(tiny_store, f"view=re:seed={s}") for s in (0, 0, 1))
    np.testing.assert_array_equal(a, again)
    assert np.abs(a - b).max() > 0.1
    store = hsstore.open(tiny_store)
    table = np.random.default_rng(0).standard_normal((len(store.vocab), store.hidden_size), dtype=np.float32)
    np.testing.assert_allclose(a, mean_rows(table, store.corpus("sts17")), atol=1e-5)
    assert embed(tiny_store, "view=re:dim=7").shape[1] == 7


def test_input_view_equals_the_models_own_embedding_rows(tiny_store, tiny_model):
    from transformers import AutoModel

    table = AutoModel.from_pretrained(tiny_model).get_input_embeddings().weight.detach().numpy()
    got = embed(tiny_store, "view=input;pool=mean")
    np.testing.assert_allclose(got, mean_rows(table, hsstore.open(tiny_store).corpus("sts17")), atol=1e-5)


def sums_by_id(ids, states, size):
    """Per id, the sum of its rows of ``states`` (numpy's bincount, one column at a time)."""
    return np.stack([np.bincount(ids, weights=states[:, j].astype(np.float64), minlength=size)
                     for j in range(states.shape[1])], axis=1)


def numpy_avg_table(store, layer, ref="wikitext2"):
    """Plain numpy Avg.: the mean of each id's stored states in ``ref``, input rows where unseen."""
    wiki = store.corpus(ref)
    ids = wiki.all_token_ids
    sums = sums_by_id(ids, wiki.layer(layer), len(store.vocab))
    counts = np.bincount(ids, minlength=len(store.vocab))
    table = store.input_embeddings().astype(np.float64)[:len(store.vocab)].copy()
    table[counts > 0] = sums[counts > 0] / counts[counts > 0, None]
    return table, counts


def test_avg_equals_numpy_including_fallback_and_reports_it(tiny_store):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("sts17")
    t2, _ = numpy_avg_table(store, 2)
    t3, _ = numpy_avg_table(store, 3)
    np.testing.assert_allclose(embed(tiny_store, "view=avg;layers=2"), mean_rows(t2, corpus), atol=1e-4)
    # over a 6-sentence reference most ids are unseen: the fallback (input rows) is exercised
    small, counts = numpy_avg_table(store, 2, "mine")
    unseen = counts[corpus.all_token_ids] == 0
    assert unseen.any() and not unseen.all()
    np.testing.assert_allclose(embed(tiny_store, "view=avg@mine;layers=2"), mean_rows(small, corpus), atol=1e-4)
    # layers=2,3 mixes the per-layer tables as contextual layers mix
    np.testing.assert_allclose(embed(tiny_store, "view=avg@wikitext2;layers=2,3"),
                               (mean_rows(t2, corpus) + mean_rows(t3, corpus)) / 2, atol=1e-4)
    result = Engine(store, disk_cache=False).evaluate(get_task("sts17"), parse_recipe("view=avg@mine"), diagnostics=True)
    assert result.diagnostics["unseen_avg"] == pytest.approx(unseen.mean())


def test_avg_sums_stream_in_blocks(tiny_store):
    store = hsstore.open(tiny_store)
    wiki = store.corpus("wikitext2")
    expected = sums_by_id(wiki.all_token_ids, wiki.layer(1), len(store.vocab))
    got = views.state_sums(wiki, 1, len(store.vocab), block_tokens=5000)  # blocks across chunk edges
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_avg_tables_are_cached_on_disk(tiny_store):
    store = hsstore.open(tiny_store)
    first = Pooler(store).embed(store.corpus("biosses"), parse_recipe("view=avg;layers=1"))
    again = Pooler(store)
    second = again.embed(store.corpus("biosses"), parse_recipe("view=avg;layers=1"))
    assert again.stats["computed"] == 0 and again.stats["disk"] >= 1
    np.testing.assert_array_equal(first, second)


def unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_mix_at_weights_0_and_1_equals_each_part(tiny_store):
    ctx, avg = embed(tiny_store, "layers=last"), embed(tiny_store, "view=avg;layers=last")
    np.testing.assert_array_equal(embed(tiny_store, "view=ctx*1+avg*0;layers=last"), ctx)
    np.testing.assert_array_equal(embed(tiny_store, "view=ctx*0+avg*1;layers=last"), avg)
    np.testing.assert_allclose(embed(tiny_store, "view=ctx*0.8+avg*0.2;layers=last"),
                               0.8 * unit(ctx) + 0.2 * unit(avg), atol=1e-5)
    # each part its own layers
    np.testing.assert_allclose(embed(tiny_store, "view=ctx:layers=1*0.5+avg:layers=2*0.5"),
                               0.5 * unit(embed(tiny_store, "layers=1")) + 0.5 * unit(embed(tiny_store, "view=avg;layers=2")),
                               atol=1e-5)


def test_sentence_transformers_poolings(tiny_store):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("sts17")
    states = corpus.layer(3).astype(np.float64)
    got_w = embed(tiny_store, "layers=3;pool=weightedmean")
    got_s = embed(tiny_store, "layers=3;pool=mean_sqrt_len_tokens")
    for i in (0, 5, corpus.n_sentences - 1):
        a, b = corpus.offsets[i], corpus.offsets[i + 1]
        pos = np.arange(1, b - a + 1)
        np.testing.assert_allclose(got_w[i], (pos[:, None] * states[a:b]).sum(0) / pos.sum(), atol=1e-5)
        np.testing.assert_allclose(got_s[i], states[a:b].sum(0) / np.sqrt(b - a), atol=1e-4)
    np.testing.assert_array_equal(embed(tiny_store, "pool=cls"), embed(tiny_store, "pool=first"))
    np.testing.assert_array_equal(embed(tiny_store, "pool=lasttoken"), embed(tiny_store, "pool=last"))


def test_store_without_input_matrix_fails_then_dump_adds_it(tiny_store, tiny_model, tmp_path):
    from hsstore.dump.sources import CorpusSource
    from hsstore.dump.run import run_dump

    path = tmp_path / "old"
    shutil.copytree(tiny_store, path)
    shutil.rmtree(path / "statics")
    store = hsstore.open(path)
    with pytest.raises(HsError, match="no input-embedding matrix.*hs dump"):
        Engine(store, disk_cache=False).check([get_task("sts17")], [parse_recipe("view=input")])
    with pytest.raises(HsError, match="no input-embedding matrix"):
        Engine(store, disk_cache=False).check([get_task("sts17")], [parse_recipe("view=avg")])
    Engine(store, disk_cache=False).check([get_task("sts17")], [parse_recipe("view=avg:fallback=zero")])
    logs = []
    run_dump(str(tiny_model), [CorpusSource("sts17", get_task("sts17").texts(), {"task": "sts17"})], path,
             batch_tokens=1024, progress=False, log=logs.append)
    assert any("skipped" in m for m in logs) and any("input-embedding" in m for m in logs)
    np.testing.assert_array_equal(hsstore.open(path).input_embeddings(), hsstore.open(tiny_store).input_embeddings())


@pytest.fixture()
def fake_glove(tmp_path, monkeypatch):
    words = ["the", "a", "man", "is", "playing", "guitar", ".", "did", "n't", "it", "?", ",", "cat"]
    vectors = np.random.default_rng(3).standard_normal((len(words), 5)).astype(np.float32)
    np.save(tmp_path / "glove_6B_50d_emb.npy", vectors)
    (tmp_path / "glove_6B_index.txt").write_text("\n".join(words))
    monkeypatch.setattr(views.Glove, "root", str(tmp_path))
    return dict(zip(words, vectors.astype(np.float64)))


def test_glove_words():
    assert views.glove_words("The cat didn't sit, did it?") == ["the", "cat", "did", "n't", "sit", ",", "did", "it", "?"]
    assert views.glove_words("U.S. well-known 3.5") == ["u.s", ".", "well-known", "3.5"]


def test_glove_view_on_a_fabricated_table(tiny_store, fake_glove):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("mine")
    got = embed(tiny_store, "view=glove", "mine")
    got_punct = embed(tiny_store, "view=glove;drop=punct", "mine")
    oov = total = 0
    for i, text in enumerate(corpus.texts):
        words = views.glove_words(text)
        known = [w for w in words if w in fake_glove]
        oov, total = oov + len(words) - len(known), total + len(words)
        expected = np.mean([fake_glove[w] for w in known], axis=0) if known else np.zeros(5)
        np.testing.assert_allclose(got[i], expected, atol=1e-5)
        plain = [w for w in known if w not in ".,?"]
        np.testing.assert_allclose(got_punct[i], np.mean([fake_glove[w] for w in plain], axis=0) if plain else 0,
                                   atol=1e-5)
    view = parse_recipe("view=glove").view[0].step.build()
    assert view.unseen(None, view.stream(corpus)) == pytest.approx(oov / total) and 0 < oov < total
    with pytest.raises(HsError, match="subword has no meaning for view 'glove'"):
        embed(tiny_store, "view=glove;drop=subword", "mine")


def test_glove_idf_counts_words_of_the_reference(tiny_store, fake_glove):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("mine")
    docs = [[w for w in views.glove_words(t) if w in fake_glove] for t in corpus.texts]
    df = {w: sum(w in d for d in docs) for w in fake_glove}
    got = embed(tiny_store, "view=glove;weights=idf", "mine")
    for i, d in enumerate(docs):
        if d:
            w = np.array([np.log((len(docs) + 1) / (df[x] + 1)) for x in d])
            np.testing.assert_allclose(got[i], (w[:, None] * np.array([fake_glove[x] for x in d])).sum(0) / w.sum(),
                                       atol=1e-5)


def test_hdf5_export_keeps_the_input_embeddings(tiny_store, tmp_path):
    from hsstore.store.export import export_hdf5

    export_hdf5(hsstore.open(tiny_store), tmp_path / "s.h5", progress=False)
    np.testing.assert_array_equal(hsstore.open(tmp_path / "s.h5").input_embeddings(),
                                  hsstore.open(tiny_store).input_embeddings())
