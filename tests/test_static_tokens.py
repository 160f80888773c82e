"""The vocabulary table (every id alone), the Model2Vec-style steps against the model2vec package,
and BERT2Static's objective and table: each against an independent computation."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.embedding.pooling import Pooler
from analysis.embedding.tables import principal_axes
from analysis.embedding.tokens import zipf_weights
from analysis.recipes.recipe import parse_recipe
from analysis.runners.engine import Engine
from cli.main import hs
from hsstore import HsError
from hsstore.errors import StoreError
from hsstore.distil import b2s as b2s_train
from hsstore.dump.run import run_dump
from hsstore.store import b2s as b2s_tables, vocabulary

def run(*args):
    result = CliRunner().invoke(hs, list(map(str, args)))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def vocab_store(tmp_path_factory, tiny_store, tiny_model):
    """A copy of the tiny store with the vocabulary table added by `hs dump --vocabulary-states` alone."""
    out = tmp_path_factory.mktemp("vocab") / "store"
    shutil.copytree(tiny_store, out)
    run_dump(str(tiny_model), [], out, progress=False, log=lambda m: None, vocabulary_states=True)
    return out


def direct_states(model_dir, ids, layers):
    """Per id and layer, the mean over [CLS] id [SEP] of a plain transformers forward pass."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    inputs = torch.tensor([[tok.cls_token_id, i, tok.sep_token_id] for i in ids])
    with torch.no_grad():
        hidden = model(input_ids=inputs, output_hidden_states=True).hidden_states
    return np.stack([hidden[layer].mean(dim=1).numpy() for layer in layers])


def test_vocabulary_table_equals_a_direct_forward_pass_of_single_tokens(vocab_store, tiny_model):
    store = hsstore.open(vocab_store)
    ids = [0, 1, 2, 7, 100, len(store.vocab) - 1]
    want = direct_states(tiny_model, ids, store.layers)
    for pos, layer in enumerate(store.layers):
        got = vocabulary.states(store, layer)
        assert got.shape == (len(store.vocab), store.hidden_size)
        np.testing.assert_allclose(got[ids], want[pos], atol=2e-3, rtol=2e-3)  # stored in float16
    rec = vocabulary.record(store)
    assert rec["special_prefix"] == [2] and rec["special_suffix"] == [3]
    assert vocabulary.special_tokens(store)["roles"]["unk"] == 1
    code, out = run("verify", vocab_store, "--deep")
    assert code == 0, out


def test_vocabulary_dump_resumes_to_the_same_bytes(tmp_path, tiny_model, monkeypatch):
    """Stopped right after its third commit (as a kill there would) and rerun, the table's files
    equal an uninterrupted dump's."""
    from hsstore.format import atomic

    class Stop(Exception):
        pass

    commits = []

    def stop_at_third(label):
        commits.append(label)
        if commits.count("vocabulary-commit") == 3:
            raise Stop

    def dump(out):
        run_dump(str(tiny_model), [], out, chunk_tokens=256, progress=False, log=lambda m: None, vocabulary_states=True)

    monkeypatch.setattr(atomic, "fault_point", stop_at_third)
    with pytest.raises(Stop):
        dump(tmp_path / "a")
    monkeypatch.undo()
    assert hsstore.open(tmp_path / "a").group_attrs(vocabulary.GROUP)["states_rows_done"] == 3 * 256
    for out in ("a", "b"):
        dump(tmp_path / out)
    files = {out: {p.relative_to(tmp_path / out): p.read_bytes()
                   for p in (tmp_path / out / vocabulary.GROUP / vocabulary.ARRAY).rglob("*") if p.is_file()}
             for out in ("a", "b")}
    assert len(files["a"]) == 7 * 4 + 1 and files["a"] == files["b"]  # 1590 ids in 7 chunks x 4 layers, zarr.json
    assert hsstore.open(tmp_path / "a").group_attrs(vocabulary.GROUP)["states_manifest"] == \
        hsstore.open(tmp_path / "b").group_attrs(vocabulary.GROUP)["states_manifest"]


def test_alone_with_model2vecs_steps_equals_the_model2vec_package(vocab_store, tiny_model):
    """The package's own distillation of the tiny BERT (PCA to 16 dimensions, Zipf weights) against
    view=alone>tablepca;drop=special+unk;weights=zipf: the same unit vectors up to float16 rounding."""
    distill = pytest.importorskip("model2vec.distill")
    from transformers import AutoModel, AutoTokenizer

    m2v = distill.distill_from_model(AutoModel.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model),
                                     pca_dims=16, device="cpu")
    store = hsstore.open(vocab_store)
    assert vocabulary.table_vocabulary(store).sum() == m2v.embedding.shape[0]
    for corpus in ("sts17", "mine"):
        c = store.corpus(corpus)
        X = Engine(store, disk_cache=False).embed(corpus, parse_recipe(
            "view=alone>tablepca:k=16;drop=special+unk;weights=zipf;post=l2"))
        Y = m2v.encode(c.texts).astype(np.float32)
        assert X.shape == Y.shape == (c.n_sentences, 16)
        np.testing.assert_allclose(X, Y, atol=5e-3)
        assert np.median(np.abs(X - Y)) < 5e-4


def test_zipf_weights_and_table_pca_against_plain_formulas(vocab_store):
    store = hsstore.open(vocab_store)
    kept = vocabulary.table_vocabulary(store)
    assert not kept[[2, 3, 4]].any() and kept[[0, 1, 5]].all()  # [CLS] [SEP] [MASK] out; [PAD] [UNK] in
    w = zipf_weights(store, 1e-3)
    n = int(kept.sum())
    p = (1 / np.arange(2, n + 2)) / (1 / np.arange(2, n + 2)).sum()
    np.testing.assert_allclose(w[kept], 1e-3 / (1e-3 + p), rtol=1e-6)
    X = np.random.default_rng(0).standard_normal((50, 6))
    mean, comps = principal_axes(X, 3)
    from sklearn.decomposition import PCA
    ref = PCA(3, svd_solver="full").fit(X)
    np.testing.assert_allclose(np.abs(comps @ ref.components_.T), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(mean, X.mean(0))


def test_recipes_with_table_steps_parse_and_print_back():
    r = parse_recipe("view=alone>tablepca:k=16*0.5+ctx*0.5;drop=unk;weights=zipf:a=0.001")
    assert str(r).startswith("view=alone>tablepca:k=16*0.5+ctx*0.5;") and parse_recipe(str(r)) == r
    with pytest.raises(HsError, match="table steps follow a static view"):
        parse_recipe("view=ctx>tablepca")
    with pytest.raises(HsError, match="unknown token-table step"):
        parse_recipe("view=alone>pca")


def test_a_store_without_the_table_is_a_one_line_error(tiny_store):
    code, out = run("eval", tiny_store, "-t", "sts17", "--view", "alone", "-q")
    assert code == 2 and out.strip().count("\n") == 0 and "hs dump --model" in out and "--vocabulary-states" in out


# ---- BERT2Static ----------------------------------------------------------------------------------

def numpy_loss_and_grad(table, context, targets, negatives):
    """The clamped logistic loss of a positive and its negatives, and its gradient in the table rows."""
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    n = len(targets)
    grad = np.zeros_like(table)
    s = (context * table[targets]).sum(1)
    loss = np.mean(np.log1p(np.exp(-np.clip(s, -20, 20))))
    inside = (np.abs(s) < 20)[:, None]
    np.add.at(grad, targets, -sig(-s)[:, None] * context * inside / n)
    for row in negatives:
        s = (context * table[row]).sum(1)
        loss += np.mean(np.log1p(np.exp(np.clip(s, -20, 20))))
        np.add.at(grad, row, sig(s)[:, None] * context * (np.abs(s) < 20)[:, None] / n)
    return loss, grad


def test_b2s_loss_and_gradient_against_numpy():
    import torch

    rng = np.random.default_rng(0)
    table = rng.standard_normal((9, 4))
    context = rng.standard_normal((12, 4)) * 2
    context[0] *= 40  # a score beyond the clamp: no gradient there
    targets, negatives = rng.integers(0, 9, 12), rng.integers(0, 9, (3, 12))
    emb = torch.nn.Embedding(9, 4, sparse=True).double()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table))
    loss = b2s_train.batch_loss(emb, torch.from_numpy(context), torch.from_numpy(targets), torch.from_numpy(negatives))
    loss.backward()
    want_loss, want_grad = numpy_loss_and_grad(table, context, targets, negatives)
    assert float(loss.detach()) == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(emb.weight.grad.to_dense().numpy(), want_grad, atol=1e-12)


def test_b2s_contexts_and_sampling_against_numpy(tiny_store):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("biosses")
    C = b2s_train.context_vectors(corpus, 3, block_tokens=300)  # several blocks
    want = [corpus.hidden(i, layers=[3])[0].astype(np.float64).mean(0) for i in range(corpus.n_sentences)]
    np.testing.assert_allclose(C, np.array(want), atol=1e-6)
    s = b2s_train.Settings(min_count=3, t=1e-3)
    tg = b2s_train.targets(corpus, len(store.vocab), s)
    text = corpus.all_token_kinds == 0
    counts = np.bincount(corpus.all_token_ids[text], minlength=len(store.vocab))
    f = np.where(counts >= 3, counts, 0) / np.where(counts >= 3, counts, 0).sum()
    for i in np.flatnonzero(counts >= 3)[:20]:  # the authors' rejection probability, kept = 1 - it
        assert tg.keep[i] == pytest.approx(min(1, np.sqrt(1e-3 / f[i]) + 1e-3 / f[i]))
    np.testing.assert_allclose(tg.noise[counts >= 3], np.sqrt(counts[counts >= 3]) / np.sqrt(counts[counts >= 3]).sum())
    assert set(tg.ids.tolist()) == set(np.flatnonzero(counts >= 3).tolist())


def test_b2s_table_trains_is_stored_checked_and_read_by_the_view(tmp_path, tiny_store, other_model):
    out = tmp_path / "store"
    shutil.copytree(tiny_store, out)
    code, msg = run("b2s", out, "--ref", "biosses", "--min-count", "2", "--epochs", "2", "-q")
    assert code == 0, msg
    store = hsstore.open(out)
    table = b2s_tables.table(store, "biosses")
    rec = b2s_tables.record(store, "biosses")
    trained = np.zeros(len(store.vocab), dtype=bool)
    trained[rec["trained"]] = True
    assert (table[~trained] == 0).all() and (np.abs(table[trained]).sum(1) > 0).all()
    assert len(rec["measured"]["epochs"]) == 2 and rec["settings"]["layer"] == 3
    # the view: the mean of the table rows of the tokens that have one
    corpus = store.corpus("sts17")
    got = Pooler(store, disk_cache=False).embed(corpus, parse_recipe("view=b2s@biosses"))
    for i in range(5):
        ids = corpus.token_ids(i)
        ids = ids[trained[ids]]
        want = table[ids].astype(np.float64).mean(0) if len(ids) else np.zeros(store.hidden_size)
        np.testing.assert_allclose(got[i], want, atol=1e-6)
    code, msg = run("verify", out, "--deep")
    assert code == 0, msg
    # a table copied in from a store of another model is refused in one line
    other = tmp_path / "other"
    shutil.rmtree(out / "b2s")
    code, msg = run("dump", "--model", other_model, "--task", "biosses", "--out", other, "-q")
    assert code == 0, msg
    code, msg = run("b2s", other, "--ref", "biosses", "--min-count", "2", "-q")
    assert code == 0, msg
    shutil.copytree(other / "b2s", out / "b2s")
    code, msg = run("eval", out, "-t", "sts17", "--view", "b2s@biosses", "-q")
    assert code == 2 and msg.strip().count("\n") == 0 and "another model" in msg, msg
    # a flipped byte in a chunk of the table: hs verify --deep finds it
    chunk = next(p for p in (out / "b2s" / "biosses" / "vectors").rglob("*") if p.is_file() and p.name != "zarr.json")
    raw = bytearray(chunk.read_bytes())
    raw[10] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    code, msg = run("verify", out, "--deep")
    assert code != 0 and "checksum" in msg


def test_a_valid_chunk_in_the_wrong_place_of_the_tables_is_refused(vocab_store, tmp_path):
    """Each read of the vocabulary table compares every chunk's CRC-32C with the manifest's: a chunk of
    another layer, valid in itself, moved into place is a one-line error, not another layer's numbers."""
    out = tmp_path / "store"
    shutil.copytree(vocab_store, out)
    array = out / vocabulary.GROUP / vocabulary.ARRAY / "c"
    first, second = array / "0" / "0" / "0", array / "1" / "0" / "0"
    assert first.is_file() and second.is_file()
    first.write_bytes(second.read_bytes())
    store = hsstore.open(out)
    with pytest.raises(StoreError, match="not the chunk hs wrote there"):
        vocabulary.states(store, store.layers[0])
    code, msg = run("verify", out, "--deep")
    assert code != 0 and "vocabulary" in msg
