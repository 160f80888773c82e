"""The fault drill's object-storage cases (scripts/faults.py calls ``object_storage``).

A local S3 server (moto) stands for the object store. Each case is a real SIGKILL right after a
metadata write of a dump to ``s3://`` (``HS_FAULT_KILL_AFTER``), which also leaves the dump's lock
object behind; the rerun on this host must replace that stale lock, resume, and end with every
object identical to the undisturbed local dump's file of the same name. Then a second writer
while a lock of another host is there: a clean error, and the store untouched.

    python scripts/faults_object_storage.py     # these cases alone (scripts/faults.py runs them last)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket

POINTS = ["store-committed", "corpus-created", "chunks-written", "commit:3", "complete"]


def _objects(fs, url: str) -> dict[str, str]:
    from hsstore.format.storage import LOCK_OBJECT

    base = url[len("s3://"):]
    return {name[len(base) + 1:]: hashlib.sha256(fs.cat_file(name)).hexdigest()
            for name in sorted(fs.find(base)) if not name.endswith(LOCK_OBJECT)}


def object_storage(drill) -> None:
    """Kill-and-resume and lock cases on an S3 server (rows ``s3: ...`` of the drill's table)."""
    from drill import CLEAN, IDENTICAL, WRONG, clean_error, run_hs, run_in_process

    try:
        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        return drill.record("s3: object storage cases", "skipped", f"{exc.name} is not installed (pip install -e .[test])")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="drill", AWS_SECRET_ACCESS_KEY="drill", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log would drown the table
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        fs = s3fs.S3FileSystem(use_listings_cache=False)
        fs.mkdir("drill")
        for point in POINTS:
            case, url = f"s3: kill after {point}", f"s3://drill/kp-{point.replace(':', '-')}"
            proc = run_hs(*drill.dump_args, "--out", url, env={"HS_FAULT_KILL_AFTER": point})
            if proc.returncode != -signal.SIGKILL:
                drill.record(case, WRONG, f"the hook did not fire (exit {proc.returncode})")
                continue
            left = fs.exists(url[5:] + "/.hs-lock.json")
            info = run_in_process("info", url)
            if info.returncode != 0 and not clean_error(info) or "Traceback" in info.stderr:
                drill.record(case, WRONG, "hs info: " + info.stderr.strip().splitlines()[-1][:80])
                continue
            rerun = run_in_process(*drill.dump_args, "--out", url)
            if rerun.returncode != 0:
                drill.record(case, WRONG, "rerun failed: " + rerun.stderr.strip()[-100:])
                continue
            same = _objects(fs, url) == drill.clean_files
            detail = ["the killed dump's lock was replaced"] if left else []
            drill.record(case, IDENTICAL if same else WRONG, "; ".join(detail + ([] if same else ["objects differ"])))
        url = "s3://drill/kp-complete"
        before = _objects(fs, url)
        fs.pipe_file(url[5:] + "/.hs-lock.json", json.dumps({"host": "elsewhere", "pid": 1, "time": "-"}).encode())
        proc = run_in_process(*drill.dump_args, "--out", url)
        ok = clean_error(proc) and "host elsewhere" in proc.stderr and _objects(fs, url) == before
        drill.record("s3: a second writer (lock of another host)", CLEAN if ok else WRONG,
                     proc.stderr.strip().splitlines()[-1][:90] if proc.stderr.strip() else "")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from drill import Drill, make_corpus

    from conftest import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="hs-faults-s3-"))
    os.environ["HS_CACHE"] = str(work / "cache")
    try:
        drill = Drill(work, build_tiny_model(work / "model"), make_corpus(work / "wiki.txt", 400))
        object_storage(drill)
        return drill.summary()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
