"""Where a store lives: a local directory (``pathlib.Path``) or an object-storage prefix (``ObjectPath``).

``location("runs/minilm")`` is a ``Path``; ``location("s3://bucket/prefix")`` (or any other fsspec
URL: ``gs://``, ``az://``, ``memory://``) is an ``ObjectPath``, a small path-like object with the
few ``Path`` methods the store code uses (``/``, ``exists``, ``iterdir``, ``read_bytes``, ``stat``,
...), so that code reads the same for both. The operations whose meaning differs are functions here
that take either or an object path: ``put_object`` (one atomic replacement of an object),
``list_tree`` (chunk objects and their sizes), ``find_temp``, ``remove_temp``, ``remove_tree``,
``total_bytes``, ``zarr_store`` and ``WriteLock``.

On object storage there is no rename: one PUT of a whole object is atomic (a reader sees the old
object or the new one, never a mix) and, on S3 and the other major stores, visible to every reader
as soon as it returns. So a file that a local store writes to a temporary name and renames is one
PUT there, and the order of the PUTs is the order of the renames (docs/store-format.md).
Credentials and the endpoint come from the backend's usual configuration: for S3 the AWS
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
...) and ``~/.aws``, or fsspec's (``FSSPEC_S3_ENDPOINT_URL``, ``~/.config/fsspec``) for every backend.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from hsstore.errors import EnvError, HsError

TEMP_SUFFIX = ".partial"  # zarr's local store names its temporary files the same way
LOCK_OBJECT = ".hs-lock.json"  # the writer's lock on object storage (a local store locks its directory)
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")
_CREDENTIALS_HINT = ("check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE for s3://) "
                     "and the endpoint (AWS_ENDPOINT_URL), see docs/scale.md")


def location(where: str | os.PathLike) -> "Path | ObjectPath":
    """A ``Path`` for a local path or ``file://`` URL, an ``ObjectPath`` for any other URL."""
    if isinstance(where, (Path, ObjectPath)):
        return where
    text = os.fspath(where)
    match = _URL.match(text)
    if not match:
        return Path(text)
    protocol, rest = match.group(1).lower(), match.group(2)
    if protocol in ("file", "local"):
        return Path(rest)
    if not rest.strip("/"):
        raise HsError(f"{text} names no bucket or container; give a URL such as {protocol}://bucket/prefix")
    fs = _filesystem(protocol, text)
    return ObjectPath(fs, protocol, fs._strip_protocol(text).rstrip("/"))  # keys as the backend spells them


def is_remote(path) -> bool:
    return isinstance(path, ObjectPath)


def _filesystem(protocol: str, url: str):
    try:
        import fsspec  # object storage only
        cls = fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(
            protocol, getattr(exc, "name", None) or "its fsspec package")
        raise EnvError(f"{url}: reading {protocol}:// URLs needs the package {package}: pip install {package}") from None
    except ValueError:
        raise HsError(f"{url}: unknown storage protocol {protocol!r}; give a local path or an fsspec URL "
                      f"such as s3://bucket/prefix") from None
    try:
        return cls(**_options(protocol))
    except Exception as exc:  # noqa: BLE001 - a backend's own error for bad settings, as one line
        raise EnvError(f"{url}: cannot set up {protocol}:// access ({_one_line(exc)}); {_CREDENTIALS_HINT}") from None


def _options(protocol: str) -> dict:
    """No listing cache: another process's writes must show in the next listing."""
    return {"use_listings_cache": False} if protocol in ("s3", "s3a", "gs", "gcs") else {}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _backend_error(exc: Exception, what: str) -> HsError:
    """A one-line error for a failed call to the object store (no credentials, no bucket, refused)."""
    if isinstance(exc, FileNotFoundError):
        return EnvError(f"{what}: not found ({_one_line(exc)}); check the bucket and prefix")
    return EnvError(f"{what} failed ({_one_line(exc)}); {_CREDENTIALS_HINT}")


class ObjectPath:
    """A key prefix in an object store, with the ``Path`` methods the store code uses."""

    def __init__(self, fs, protocol: str, key: str, kind: str | None = None):
        self.fs, self.protocol, self.key = fs, protocol, key
        self._kind = kind  # "directory" or "file" when a listing already said which

    def __str__(self) -> str:
        return f"{self.protocol}://{self.key.lstrip('/')}"

    __fspath__ = None  # not a local path: os functions must not take it

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: "ObjectPath") -> bool:
        return str(self) < str(other)

    def __truediv__(self, name: str) -> "ObjectPath":
        return ObjectPath(self.fs, self.protocol, f"{self.key}/{str(name).strip('/')}")

    def joinpath(self, *parts: str) -> "ObjectPath":
        out = self
        for part in parts:
            out = out / part
        return out

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(self.fs, self.protocol, self.key.rsplit("/", 1)[0]) if "/" in self.key else self

    @property
    def parents(self) -> list:
        return []  # prefixes are not objects: nothing above a store can be "a file in the way"

    def with_name(self, name: str) -> "ObjectPath":
        return self.parent / name

    def relative_to(self, other: "ObjectPath") -> str:
        prefix = other.key.rstrip("/") + "/"
        if not self.key.startswith(prefix):
            raise ValueError(f"{self} is not under {other}")
        return self.key[len(prefix):]

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except HsError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore and friends raise their own types
            raise _backend_error(exc, f"{what} {self}") from None

    def exists(self) -> bool:
        return bool(self._call("looking up", self.fs.exists, self.key))

    def is_dir(self) -> bool:
        if self._kind is None:
            self._kind = "directory" if self._call("looking up", self.fs.isdir, self.key) else None
        return self._kind == "directory"

    def is_file(self) -> bool:
        if self._kind is None:
            self._kind = "file" if self._call("looking up", self.fs.isfile, self.key) else None
        return self._kind == "file"

    def iterdir(self) -> list["ObjectPath"]:
        try:
            entries = self._call("listing", self.fs.ls, self.key, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            key = entry["name"].rstrip("/")
            if key != self.key:
                out.append(ObjectPath(self.fs, self.protocol, key, "directory" if entry["type"] == "directory"
                                      else "file"))
        return out

    def read_bytes(self) -> bytes:
        return self._call("reading", self.fs.cat_file, self.key)

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def stat(self) -> SimpleNamespace:
        """``st_size`` and, as ``st_mtime_ns``, the object's version (ETag or time): it changes with
        every rewrite, which is what the caches' signatures need."""
        info = self._call("looking up", self.fs.info, self.key)
        return SimpleNamespace(st_size=int(info.get("size") or 0), st_mtime_ns=_version(info))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is written under it."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self._call("deleting", self.fs.rm_file, self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise


def _version(info: dict) -> str:
    for key in ("ETag", "etag", "md5Hash", "generation", "LastModified", "mtime", "last_modified", "created"):
        if info.get(key) is not None:
            return str(info[key]).strip('"')
    return str(info.get("size"))


def put_object(path: "ObjectPath", data: bytes) -> None:
    """Replace an object with ``data`` in one PUT: readers see the old object or the new one."""
    path._call("writing", path.fs.pipe_file, path.key, data)


def read_many(paths: list) -> list[bytes | None]:
    """The bytes of each file (None where it does not exist): local files one after the other, objects
    in one concurrent request (a GET each, as Zarr would make)."""
    if not paths or not is_remote(paths[0]):
        out = []
        for path in paths:
            try:
                out.append(path.read_bytes())
            except FileNotFoundError:
                out.append(None)
        return out
    first = paths[0]
    found = first._call("reading", first.fs.cat, [p.key for p in paths], on_error="return")
    out = []
    for path in paths:
        got = found.get(path.key, found.get(path.key.lstrip("/")))
        if isinstance(got, FileNotFoundError) or got is None:
            out.append(None)
        elif isinstance(got, BaseException):
            raise _backend_error(got, f"reading {path}")  # type: ignore[arg-type]
        else:
            out.append(bytes(got))
    return out


def list_tree(directory: "ObjectPath", under: str = "c") -> dict[str, tuple[int, str]]:
    """``{key: (size, version)}`` of the objects below ``directory/under`` (the object-store side of
    ``chunks.list_files``; ``.partial`` leftovers are not chunks)."""
    base = directory / under
    try:
        found = directory._call("listing", directory.fs.find, base.key, detail=True)
    except FileNotFoundError:
        return {}
    out = {}
    for name, info in found.items():
        if info.get("type") == "directory" or name.endswith(TEMP_SUFFIX):
            continue
        out[f"{under}/{ObjectPath(directory.fs, directory.protocol, name).relative_to(base)}"] = (
            int(info.get("size") or 0), _version(info))
    return out


def find_temp(root) -> list:
    """The temporary files (``*.partial``) a killed writer left anywhere below ``root``."""
    if not is_remote(root):
        return sorted(root.rglob(f"*{TEMP_SUFFIX}"))
    try:
        names = root._call("listing", root.fs.find, root.key)
    except FileNotFoundError:
        return []
    return sorted(ObjectPath(root.fs, root.protocol, n) for n in names if n.endswith(TEMP_SUFFIX))


def remove_temp(root: "ObjectPath", recursive: bool = True) -> list:
    """Delete the ``*.partial`` objects below ``root`` (or directly in it); returns them. hs writes
    none on object storage (a PUT needs no temporary name), but a copied local store may hold some."""
    found = [p for p in find_temp(root) if recursive or p.parent == root]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def remove_tree(path) -> None:
    """Delete a directory, or every object under a prefix."""
    if is_remote(path):
        try:
            path._call("deleting", path.fs.rm, path.key, recursive=True)
        except FileNotFoundError:
            pass
        return
    shutil.rmtree(path)


def total_bytes(path) -> int | None:
    """Bytes of every file below a directory or prefix (None if it is not there)."""
    if is_remote(path):
        sizes = list_tree(path.parent, path.name)
        return sum(size for size, _ in sizes.values()) if sizes else None
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def zarr_store(path, mode: str = "r"):
    """What ``zarr.open_group`` takes for ``path``: the path itself (zarr's LocalStore), or an
    ``FsspecStore`` on the same URL (zarr reads and writes whole objects there)."""
    if not is_remote(path):
        return str(path)
    from zarr.storage import FsspecStore  # object storage only

    try:
        return FsspecStore.from_url(str(path), storage_options=_options(path.protocol), read_only=mode == "r")
    except Exception as exc:  # noqa: BLE001
        raise _backend_error(exc, f"opening {path}") from None


class WriteLock:
    """The store's exclusive writer lock, held from ``acquire`` to ``release``.

    A local store: an ``flock`` on the store directory (it dies with its process, no file is left).
    Object storage: the object ``.hs-lock.json`` (owner, host, pid, time), created with a
    conditional PUT that fails if it exists (S3's ``If-None-Match: *``), deleted on release; a
    local ``flock`` keyed by the URL makes writers on one host take turns, so one that finds a lock
    of its own host whose process is gone (a killed dump) may replace it. A lock of another host is
    only ever removed by a person (the error says how).
    """

    def __init__(self, path):
        self.path, self._fd, self._object = path, None, None

    @classmethod
    def acquire(cls, path) -> "WriteLock":
        lock = cls(path)
        if is_remote(path):
            lock._fd = _flock(Path(tempfile.gettempdir()) / "hs-locks" /
                              (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".lock"), path, create=True)
            try:
                lock._take_object()
            except BaseException:
                lock.release()
                raise
        else:
            lock._fd = _flock(path, path, create=False)
        return lock

    def _take_object(self) -> None:
        target = self.path / LOCK_OBJECT
        mine = {"owner": os.environ.get("USER") or str(os.getuid()), "host": socket.gethostname(),
                "pid": os.getpid(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for _ in range(2):
            try:
                data = json.dumps(mine).encode()
                _create_only(target, data)
                self._object = target
                _check_conditional(target, data)
                return
            except FileExistsError:
                held = _read_lock(target)
                if held is None:  # released meanwhile
                    continue
                if held.get("host") == mine["host"] and not _alive(held.get("pid")):
                    target.unlink(missing_ok=True)  # our flock rules out a live writer on this host
                    continue
                raise HsError(f"store {self.path} is being written by another hs dump (lock {target}: host "
                              f"{held.get('host')}, pid {held.get('pid')}, since {held.get('time')}); wait for it, "
                              f"or if that dump is dead delete the lock object (aws s3 rm {target}) and rerun") from None
        raise HsError(f"store {self.path}: the lock {target} keeps changing; another hs dump is starting there")

    def release(self) -> None:
        if self._object is not None:
            try:
                self._object.unlink(missing_ok=True)
            except HsError:
                pass  # a lock left behind names its host and pid; the next dump on this host replaces it
            self._object = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_being_written(path) -> bool:
    """Whether a writer holds the store's lock now, found without taking it (a probe that took the
    lock could make a dump starting at that moment fail): the lock object on object storage, Linux's
    table of file locks (``/proc/locks``) for a local store; False where neither can tell."""
    if is_remote(path):
        return (path / LOCK_OBJECT).exists()
    try:
        st = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    mine = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(line.split()[1:2] == ["FLOCK"] and mine in line.split() for line in table.splitlines())


def _flock(file: Path, store, create: bool) -> int:
    if create:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o666)
    else:
        fd = os.open(file, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise HsError(f"store {store} is being written by another hs dump; wait for it to finish "
                      f"or write to another --out") from None
    return fd


def _create_only(target: "ObjectPath", data: bytes) -> None:
    """Write ``target`` only if no object has that name, atomically (raises FileExistsError)."""
    try:
        target.fs.pipe_file(target.key, data, mode="create")
    except (FileExistsError, HsError):
        raise
    except TypeError:  # a backend without conditional writes
        raise EnvError(f"{target.protocol}:// (this fsspec backend) has no conditional write, so hs cannot "
                       f"lock a store there; dump to a local directory or to s3:// and copy it") from None
    except Exception as exc:  # noqa: BLE001
        if "PreconditionFailed" in str(exc) or "412" in str(exc):
            raise FileExistsError(str(target)) from None
        raise _backend_error(exc, f"creating the lock {target}") from None


def _check_conditional(target: "ObjectPath", data: bytes) -> None:
    """Refuse a server that accepts the conditional PUT but ignores its condition (some
    S3-compatible ones do): a second create of the lock we hold must fail."""
    try:
        _create_only(target, data)
    except FileExistsError:
        return
    raise EnvError(f"{target.protocol}://{target.key.split('/')[0]} ignores conditional writes (If-None-Match), "
                   f"so hs cannot lock a store there; dump to a local directory and copy the store") from None


def _read_lock(target: "ObjectPath") -> dict | None:
    try:
        held = json.loads(target.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        held = {}
    return held if isinstance(held, dict) else {}


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
