"""Sharded dumps: parts dumped by separate processes and merged give the files of a one-process dump."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import hs
from hsstore.store import shards
from hsstore.store.shards import assign

ROOT = Path(__file__).resolve().parents[1]


def dump_args(model: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    # two corpora; small batches and chunks: several chunks per corpus, batches straddling the shards' boundaries
    return ["dump", "--model", str(model), "--corpus-file", str(corpus), "--corpus-file", str(corpus.with_name("short.txt")),
            "--batch-tokens", "256", "--chunk-tokens", "64", "-q", "--out", str(out), *extra]


def hs_ok(*args: str) -> str:
    r = CliRunner().invoke(hs, list(args))
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


def hs_error(*args: str) -> str:
    r = CliRunner().invoke(hs, list(args))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("hs: error:"), (r.output, r.exception)
    return lines[0]


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from hsstore.tasks import get_task

    path = tmp_path_factory.mktemp("shards") / "wiki.txt"
    texts = get_task("wikitext2").texts()
    path.write_text("\n".join(texts[:60]) + "\n")
    path.with_name("short.txt").write_text("\n".join(texts[60:90]) + "\n")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model, corpus) -> dict[str, str]:
    out = tmp_path_factory.mktemp("shards") / "one-process"
    hs_ok(*dump_args(tiny_model, corpus, out))
    return snapshot(out)


def test_assign_tiles_the_chunks_in_order():
    counts = [("a", 5), ("b", 1), ("c", 7)]
    for n in (1, 2, 3, 13, 20):
        parts = [assign(counts, k, n) for k in range(1, n + 1)]
        for name, count in counts:  # each corpus's ranges follow each other from 0 to its chunk count
            edges = [parts[0][name][0]] + [p[name][1] for p in parts]
            assert edges[0] == 0 and edges[-1] == count and edges == sorted(edges)
            assert all(parts[k][name][0] == parts[k - 1][name][1] for k in range(1, n))
        sizes = [sum(b - a for a, b in p.values()) for p in parts]
        assert max(sizes) - min(sizes) <= 1


class Stop(Exception):
    pass


def stop(now: bool) -> None:
    if now:
        raise Stop


def test_two_processes_one_killed_then_merged_equal_one_process_dump(tmp_path, tiny_model, corpus, reference,
                                                                    monkeypatch):
    out = tmp_path / "sharded"
    # shard 1 is SIGKILLed after its second commit while shard 2 runs beside it
    first = start(*dump_args(tiny_model, corpus, out, "--shard", "1/2"), env={"HS_FAULT_KILL_AFTER": "shard-commit:2"})
    second = start(*dump_args(tiny_model, corpus, out, "--shard", "2/2"))
    assert second.wait(timeout=300) == 0, second.stderr.read()
    assert first.wait(timeout=300) == -9, first.stderr.read()
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["1-of-2", "2-of-2"]
    assert not (out / "zarr.json").exists()  # nothing is a store before the merge
    assert "has not finished corpus" in hs_error("merge", str(out))
    report = CliRunner().invoke(hs, ["verify", str(out), "--deep"])
    assert report.exit_code == 0 and "rerun its hs dump --shard 1/2" in report.output, report.output
    hs_ok(*dump_args(tiny_model, corpus, out, "--shard", "1/2"))  # resumes
    # a merge cut off after moving the first shard's chunks of the first corpus (scripts/faults.py
    # SIGKILLs merges at every step), then rerun
    with monkeypatch.context() as m:
        m.setattr(shards, "fault_point", lambda label: stop(label == "shard-moved"))
        assert isinstance(CliRunner().invoke(hs, ["merge", str(out)]).exception, Stop)
    assert "incomplete" in hs_ok("info", str(out))  # half merged: readable, but not as complete
    assert "incomplete" in hs_error("show", str(out), "wiki", "0")
    hs_ok("verify", str(out), "--deep")
    hs_ok("merge", str(out))
    assert snapshot(out) == reference  # every file, chunk files and metadata, byte for byte
    hs_ok("verify", str(out), "--deep")


def test_merge_refuses_mismatched_or_missing_shards(tmp_path, tiny_model, corpus):
    out = tmp_path / "s"
    hs_ok(*dump_args(tiny_model, corpus, out, "--shard", "1/2"))
    assert "shard 2/2 of" in hs_error("merge", str(out)) and "missing" in hs_error("merge", str(out))
    # another N beside it: refused at the dump already
    assert "2-way dump" in hs_error(*dump_args(tiny_model, corpus, out, "--shard", "1/3"))
    # another batch size: another plan; the merge names the difference
    args = dump_args(tiny_model, corpus, out, "--shard", "2/2")
    args[args.index("--batch-tokens") + 1] = "512"
    hs_ok(*args)
    assert "batch_tokens" in hs_error("merge", str(out))
    assert not (out / "zarr.json").exists()


@pytest.mark.parametrize("spec", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_bad_shard_values_are_one_line_errors(tmp_path, tiny_model, corpus, spec):
    assert "--shard" in hs_error(*dump_args(tiny_model, corpus, tmp_path / "s", "--shard", spec))
    assert not (tmp_path / "s").exists()


def test_merge_without_shards_is_an_error(tmp_path):
    assert "no shards to merge" in hs_error("merge", str(tmp_path))


def test_shards_on_object_storage_are_refused(tiny_model, corpus):
    url = "memory://hs-shards/store"  # fsspec's in-process object store: no rename, like s3://
    assert "file system" in hs_error(*dump_args(tiny_model, corpus, url, "--shard", "1/2"))
    assert "file system" in hs_error("merge", url)


def test_parallel_and_serial_chunk_writers_write_identical_files(tmp_path, tiny_model, corpus, monkeypatch):
    import numpy as np
    import zarr
    from zarr.codecs import Crc32cCodec

    from hsstore.format.chunks import ChunkFiles

    # the writer's threads against zarr's own codec pipeline (an independent encoder), chunk by chunk
    data = np.random.default_rng(0).standard_normal((3, 1000, 16)).astype(np.float16)
    jobs = [(data[layer:layer + 1, col * 128:(col + 1) * 128], (layer, col, 0)) for layer in range(3) for col in range(8)]
    trees = {}
    for way in (1, 3, "zarr"):
        g = zarr.open_group(str(tmp_path / str(way)), mode="w")
        arr = g.create_array("h", shape=data.shape, chunks=(1, 128, 16), dtype=np.float16,
                             compressors=[Crc32cCodec()], fill_value=0)
        if way == "zarr":
            arr[...] = data
        else:
            crcs = ChunkFiles(arr, tmp_path / str(way)).write_many(jobs, threads=way)
            assert len(set(crcs)) == len(jobs)
        trees[way] = snapshot(tmp_path / str(way) / "h" / "c")
    assert len(trees[1]) == 24 and trees[1] == trees[3] == trees["zarr"]
    # and a whole dump: one writer thread and four
    stores = {}
    for threads in ("1", "4"):
        monkeypatch.setenv("HS_WRITE_THREADS", threads)
        hs_ok(*dump_args(tiny_model, corpus, tmp_path / f"dump{threads}"))
        stores[threads] = snapshot(tmp_path / f"dump{threads}")
    assert stores["1"] == stores["4"]
