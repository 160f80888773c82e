"""The store against a direct transformers forward pass, the query API, the HDF5 export, the lock."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import hsstore
from hsstore import HsError
from hsstore.dump.sources import CorpusSource
from hsstore.dump.run import run_dump
from hsstore.store.export import export_hdf5
from hsstore.store.writer import StoreWriter

from conftest import SENTENCES


def direct_states(model_dir, text: str) -> np.ndarray:
    """All layers of one sentence, alone in its batch (no padding): (layers, tokens, hidden)."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    enc = tok(text, return_tensors="pt", truncation=True, max_length=64)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].numpy()


def test_stored_states_equal_a_direct_forward_pass(tiny_store, tiny_model):
    corpus = hsstore.open(tiny_store).corpus("mine")
    assert sorted(corpus.texts) == sorted(SENTENCES)
    for text in SENTENCES:
        i = corpus.texts.index(text)
        expected = direct_states(tiny_model, text)
        got = corpus.hidden(i)
        assert got.shape == expected.shape
        # float16 storage: relative error ~1e-3 of the value's magnitude
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
        sub = corpus.hidden(i, layers=[0, -1])
        np.testing.assert_array_equal(sub, got[[0, -1]])


def test_tokens_and_ids_match_the_tokenizer(tiny_store, tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    corpus = hsstore.open(tiny_store).corpus("sts17")
    for i in (0, 7, corpus.n_sentences - 1):
        ids = tok(corpus.texts[i], truncation=True, max_length=64)["input_ids"]
        assert corpus.token_ids(i).tolist() == ids
        assert corpus.tokens(i) == tok.convert_ids_to_tokens(ids)
        kinds = corpus.token_kinds(i)
        assert kinds[0] == kinds[-1] == "special" and set(kinds[1:-1]) <= {"text"}


def test_sentences_are_sorted_by_length_and_deduplicated(tiny_store):
    corpus = hsstore.open(tiny_store).corpus("sts17")
    lengths = np.diff(corpus.offsets)
    assert np.all(np.diff(lengths) >= 0)
    assert len(set(corpus.texts)) == corpus.n_sentences


def test_layer_reads_a_whole_corpus(tiny_store):
    corpus = hsstore.open(tiny_store).corpus("mine")
    layer = corpus.layer(2)
    assert layer.dtype == np.float16 and layer.shape == (corpus.n_tokens, 32)
    np.testing.assert_array_equal(layer[corpus.offsets[1]:corpus.offsets[2]].astype(np.float32),
                                  corpus.hidden(1, layers=[2])[0])


def test_unknown_layer_and_corpus_are_clear_errors(tiny_store):
    store = hsstore.open(tiny_store)
    with pytest.raises(HsError, match="layer 9 is not in store"):
        store.corpus("mine").layer(9)
    with pytest.raises(HsError, match="hs dump"):
        store.corpus("stsb")


def test_hdf5_export_reads_through_the_same_api(tiny_store, tmp_path):
    zs = hsstore.open(tiny_store)
    export_hdf5(zs, tmp_path / "s.h5", progress=False)
    hs5 = hsstore.open(tmp_path / "s.h5")
    assert hs5.corpora == zs.corpora and hs5.model == zs.model and hs5.vocab == zs.vocab
    for name in ("mine", "sts17"):
        a, b = zs.corpus(name), hs5.corpus(name)
        assert a.texts == b.texts
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.hidden(3), b.hidden(3))
        np.testing.assert_array_equal(a.layer(1), b.layer(1))
    with pytest.raises(HsError, match="exists"):
        export_hdf5(zs, tmp_path / "s.h5", progress=False)


def test_a_second_writer_is_refused(tiny_store):
    store = hsstore.open(tiny_store)
    with StoreWriter(tiny_store, store.model, store.settings, store.vocab):
        with pytest.raises(HsError, match="being written by another hs dump"):
            StoreWriter(tiny_store, store.model, store.settings, store.vocab)
    # released on exit: a new writer gets in
    StoreWriter(tiny_store, store.model, store.settings, store.vocab).close()
    # the lock is the directory's own: nothing is left in the store for Zarr to warn about
    assert sorted(p.name for p in tiny_store.iterdir()) == ["corpora", "statics", "vocab", "vocabulary", "zarr.json"]


def _dump(model, out, **kw):
    src = [CorpusSource("few", SENTENCES[:3], {"test": True})]
    return run_dump(str(model), src, out, progress=False, log=lambda m: None, **kw)


def test_other_model_or_settings_are_refused(tmp_path, tiny_model, other_model):
    out = tmp_path / "s"
    _dump(tiny_model, out)
    with pytest.raises(HsError, match="holds states of model"):
        _dump(other_model, out)
    with pytest.raises(HsError, match="dtype=float16"):
        _dump(tiny_model, out, dtype="float32")
    with pytest.raises(HsError, match="layers="):
        _dump(tiny_model, out, layers_spec="0,3")
    assert _dump(tiny_model, out)["few"]["status"] == "complete"  # same again: nothing to do


def test_layer_subset_and_float32(tmp_path, tiny_model):
    out = tmp_path / "s"
    _dump(tiny_model, out, layers_spec="0,last", dtype="float32")
    store = hsstore.open(out)
    assert store.layers == [0, 3]
    corpus = store.corpus("few")
    i = corpus.texts.index(SENTENCES[0])
    expected = direct_states(tiny_model, SENTENCES[0])[[0, 3]]
    np.testing.assert_allclose(corpus.hidden(i), expected, atol=1e-5)
    assert corpus.layer(3).dtype == np.float32


def test_direct_chunk_files_equal_zarr_encoding(tmp_path):
    """The writer's own chunk encoding is byte-identical to zarr's codec pipeline, edge chunk too."""
    import zarr
    from zarr.codecs import Crc32cCodec

    from hsstore.format.chunks import ChunkFiles

    data = np.random.default_rng(0).standard_normal((3, 1000, 8)).astype(np.float16)
    trees = {}
    for way in ("zarr", "direct"):
        root = tmp_path / way
        g = zarr.open_group(str(root), mode="w")
        arr = g.create_array("h", shape=data.shape, dtype=np.float16, chunks=(1, 256, 8),
                             compressors=[Crc32cCodec()], fill_value=0)
        if way == "zarr":
            arr[:] = data
        else:
            files = ChunkFiles(arr, root)
            for layer in range(3):
                for col in range(4):  # the last chunk is short: stored padded, as zarr does
                    files.write(data[layer:layer + 1, col * 256:(col + 1) * 256], (layer, col, 0))
        trees[way] = {p.relative_to(root): p.read_bytes() for p in sorted((root / "h" / "c").rglob("*")) if p.is_file()}
        np.testing.assert_array_equal(zarr.open_group(str(root), mode="r")["h"][:], data)
    assert len(trees["zarr"]) == 12 and trees["zarr"] == trees["direct"]


@pytest.mark.parametrize("threads", ["1", "3", "object storage"])
def test_read_rows_equals_zarr_and_checks_every_chunk(tmp_path, monkeypatch, threads):
    """hs's own chunk reader gives zarr's values for any row range (chunks read whole into place, the
    edges of a range copied), on one thread or several or as object storage's whole files, and names a
    foreign or damaged chunk."""
    import types

    import zarr
    from zarr.codecs import Crc32cCodec

    from hsstore.errors import StoreError
    from hsstore.format import chunks, storage
    from hsstore.format.chunks import Layout, crc32c, read_rows

    if threads == "object storage":  # the path that gets each chunk file's bytes whole (storage.read_many)
        monkeypatch.setattr(chunks, "storage", types.SimpleNamespace(is_remote=lambda p: True,
                                                                     read_many=storage.read_many))
    else:
        monkeypatch.setenv("HS_READ_THREADS", threads)
    data = np.random.default_rng(1).standard_normal((2, 1000, 8)).astype(np.float16)
    arr = zarr.open_group(str(tmp_path), mode="w").create_array("h", shape=data.shape, dtype=np.float16,
                                                                  chunks=(1, 256, 8), compressors=[Crc32cCodec()])
    arr[:] = data
    layout = Layout.of(arr, "h", axis=1)
    crcs = {col: int.from_bytes((tmp_path / "h" / f"c/1/{col}/0").read_bytes()[-4:], "little") for col in range(4)}
    for start, stop in [(0, 1000), (0, 256), (256, 512), (3, 4), (250, 770), (999, 1000), (5, 5)]:
        got = read_rows(tmp_path / "h", layout, (1,), start, stop, crcs.__getitem__)
        np.testing.assert_array_equal(got, arr[1, start:stop])
    chunk = tmp_path / "h" / "c/1/2/0"
    raw = bytearray(chunk.read_bytes()[:-4])
    raw[10] ^= 1
    chunk.write_bytes(bytes(raw) + crc32c(bytes(raw)).to_bytes(4, "little"))  # valid, but not the chunk written
    with pytest.raises(StoreError, match="not the chunk hs wrote there"):
        read_rows(tmp_path / "h", layout, (1,), 0, 1000, crcs.__getitem__)
    chunk.write_bytes(bytes(raw) + b"\0\0\0\0")
    with pytest.raises(StoreError, match="checksum mismatch"):
        read_rows(tmp_path / "h", layout, (1,), 600, 700)
    chunk.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="truncated"):
        read_rows(tmp_path / "h", layout, (1,), 0, 1000)
    chunk.unlink()
    with pytest.raises(StoreError, match="missing"):
        read_rows(tmp_path / "h", layout, (1,), 512, 513)
