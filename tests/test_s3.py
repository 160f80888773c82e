"""Stores on object storage: dump to, read from, resume in, lock and verify an ``s3://`` store.

The tests start a local S3-compatible server (moto in server mode) on a free port; every result is
compared with the same dump into a local directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket

import numpy as np
import pytest

import hsstore
from hsstore.format import storage
from hsstore.store import writer
from hsstore.errors import HsError
from hsstore.tasks import get_task
from test_integrity import KILL_POINTS, Killed, dump, eval_scores, interrupt_at, one_line_error, run_cli, snapshot

BUCKET = "hs-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server for this module, with the AWS variables pointing at it; yields a filesystem."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[test])")
    s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e .[test])")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - any failure to listen means no server
        pytest.skip(f"the moto S3 server cannot start here ({exc})")
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.mkdir(BUCKET)
    yield fs
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


_n = iter(range(10**6))


@pytest.fixture()
def url(s3) -> str:
    """A fresh prefix in the bucket for each test."""
    return f"s3://{BUCKET}/t{next(_n)}/store"


def objects(fs, url: str) -> dict[str, str]:
    """``{key below the store: sha256}`` of every object, as ``snapshot`` gives for a directory."""
    base = url[len("s3://"):]
    return {name[len(base) + 1:]: hashlib.sha256(fs.cat_file(name)).hexdigest()
            for name in sorted(fs.find(base)) if not name.endswith(storage.LOCK_OBJECT)}


def small_dump(model, out):
    """A few batches and chunks: enough for every kind of write, quick on a loaded machine."""
    return dump(model, out, texts=get_task("sts17").texts()[:80])


@pytest.fixture(scope="module")
def local(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("local") / "s"
    small_dump(tiny_model, out)
    return out


def upload(fs, local_dir, url: str) -> None:
    """A copy of a local store at ``url`` (what `aws s3 sync` would make)."""
    fs.put(str(local_dir), url[len("s3://"):], recursive=True)


def test_dump_to_s3_gives_the_local_dumps_objects(s3, url, tiny_model, local):
    small_dump(tiny_model, url)
    assert objects(s3, url) == snapshot(local)  # byte for byte, metadata included
    assert not s3.exists(url + "/" + storage.LOCK_OBJECT)  # released
    a, b = hsstore.open(url).corpus("few"), hsstore.open(local).corpus("few")
    assert str(hsstore.open(url).path) == url
    for layer in hsstore.open(local).layers:
        np.testing.assert_array_equal(a.layer(layer), b.layer(layer))
    assert a.texts == b.texts
    # a rewritten chunk object changes the signature that keys the caches outside the store
    before = hsstore.open(url).corpus("few").signature(1)
    chunk = url[len("s3://"):] + "/corpora/few/hidden/c/1/0/0"
    data = bytearray(s3.cat_file(chunk))
    data[0] ^= 1
    s3.pipe_file(chunk, bytes(data))
    assert hsstore.open(url).corpus("few").signature(1) != before


def test_eval_info_verify_from_s3_match_local(s3, url, tiny_model, tmp_path):
    from hsstore.dump.sources import CorpusSource
    from hsstore.dump.run import run_dump

    src = [CorpusSource("sts17", get_task("sts17").texts(), {"task": "sts17"})]
    run_dump(str(tiny_model), src, tmp_path / "sts", batch_tokens=1024, progress=False, log=lambda m: None)
    upload(s3, tmp_path / "sts", url)
    remote, here = eval_scores(url), eval_scores(tmp_path / "sts")
    assert remote[0] == here[0] == 0, remote
    score = [ln for ln in here[1].splitlines() if "sts17" in ln]
    assert score and score == [ln for ln in remote[1].splitlines() if "sts17" in ln]
    code, out = run_cli("info", url)
    assert code == 0 and f"store   {url}" in out and "complete" in out, out
    code, out = run_cli("verify", url, "--deep")
    assert code == 0, out


@pytest.mark.parametrize("point", ["store-committed", "chunks-written", "commit:3"])
def test_an_interrupted_s3_dump_resumes_to_identical_objects(point, monkeypatch, s3, url, tiny_model, local):
    label, _, nth = point.partition(":")
    assert label in KILL_POINTS
    interrupt_at(monkeypatch, label, int(nth or 1))
    with pytest.raises(Killed):
        small_dump(tiny_model, url)
    monkeypatch.undo()
    code, output = run_cli("info", url)
    assert "Traceback" not in output and (code == 0 or one_line_error(output)), output
    small_dump(tiny_model, url)
    assert objects(s3, url) == snapshot(local)


def test_a_deleted_commit_is_redone(s3, url, tiny_model, local):
    """The last commit's objects gone (as if its PUTs never happened): the rerun rewrites them."""
    upload(s3, local, url)
    base = url[len("s3://"):] + "/corpora/few"
    meta = json.loads(s3.cat_file(base + "/zarr.json"))
    meta["attributes"].update(complete=False, committed_batches=meta["attributes"]["committed_batches"] - 1)
    s3.pipe_file(base + "/zarr.json", json.dumps(meta).encode())
    last = sorted(s3.find(base + "/hidden/c"))[-1]
    s3.rm_file(last)
    s3.pipe_file(base + "/hidden/c/.stale.partial", b"junk")  # litter is ignored, then removed
    small_dump(tiny_model, url)
    assert objects(s3, url) == snapshot(local)


def test_the_lock_refuses_a_second_writer(s3, url, local):
    store = hsstore.open(local)
    args = (url, store.model, store.settings, store.vocab)
    with writer.StoreWriter(*args):
        lock = json.loads(s3.cat_file(url + "/" + storage.LOCK_OBJECT))
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
        with pytest.raises(HsError, match="being written by another hs dump"):
            writer.StoreWriter(*args)
    assert not s3.exists(url + "/" + storage.LOCK_OBJECT)
    # a lock left by a killed dump of this host is replaced; one of another host is not
    s3.pipe_file(url[5:] + "/" + storage.LOCK_OBJECT, json.dumps({"host": socket.gethostname(), "pid": 2**22 + 1}).encode())
    writer.StoreWriter(*args).close()
    s3.pipe_file(url[5:] + "/" + storage.LOCK_OBJECT, json.dumps({"host": "elsewhere", "pid": 1, "time": "t"}).encode())
    with pytest.raises(HsError, match="host elsewhere.*delete the lock object"):
        writer.StoreWriter(*args)


def test_the_lock_object_is_created_only_if_absent(s3, url):
    """The conditional PUT itself: a second create of the same object fails on this server."""
    target = storage.location(url) / "probe"
    storage._create_only(target, b"1")
    with pytest.raises(FileExistsError):
        storage._create_only(target, b"2")
    assert target.read_bytes() == b"1"


def test_a_server_that_ignores_the_condition_is_refused(s3, url, local, monkeypatch):
    fs = storage.location(url).fs
    real = fs.pipe_file
    monkeypatch.setattr(fs, "pipe_file", lambda path, value, mode=None, **kw: real(path, value, **kw))
    store = hsstore.open(local)
    with pytest.raises(HsError, match="ignores conditional writes"):
        writer.StoreWriter(url, store.model, store.settings, store.vocab)
    monkeypatch.undo()
    assert not s3.exists(url[len("s3://"):] + "/" + storage.LOCK_OBJECT)  # not left behind


def test_verify_finds_a_deleted_and_a_truncated_chunk(s3, url, local):
    upload(s3, local, url)
    assert run_cli("verify", url, "--deep")[0] == 0
    base = url[len("s3://"):] + "/corpora/few/hidden/c"
    chunks = sorted(s3.find(base))
    s3.rm_file(chunks[0])
    s3.pipe_file(chunks[1], s3.cat_file(chunks[1])[:-10])
    code, out = run_cli("verify", url)
    assert code == 1, out
    key0, key1 = (c[len(base) - 1:] for c in chunks[:2])
    assert f"chunk {key0}: missing" in out and f"chunk {key1}: " in out and "truncated" in out, out
    with pytest.raises(HsError, match="missing"):
        hsstore.open(url).corpus("few").layer(0)


@pytest.mark.parametrize("where, words", [
    ("s3://", ["names no bucket"]),
    ("nosuchproto://bucket/x", ["unknown storage protocol"]),
    ("s3://no-such-bucket-hs/x", ["no store at"]),
])
def test_bad_urls_are_one_line_errors(s3, where, words):
    code, out = run_cli("info", where)
    assert code != 0 and one_line_error(out, *words), out


def test_a_dump_into_a_missing_bucket_is_a_one_line_error(s3, local):
    store = hsstore.open(local)
    with pytest.raises(HsError, match="s3://no-such-bucket-hs/x.*not found.*check the bucket") as err:
        writer.StoreWriter("s3://no-such-bucket-hs/x", store.model, store.settings, store.vocab)
    assert "\n" not in str(err.value)


def test_missing_credentials_are_a_one_line_error(s3, monkeypatch, tmp_path):
    import s3fs

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        code, out = run_cli("info", f"s3://{BUCKET}/x")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert code == 1 and one_line_error(out, "credentials"), out
