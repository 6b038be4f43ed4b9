"""Where files live: a local folder, or object storage reached through fsspec.

``ObjectStore(root, options)`` is a folder of objects named by keys (``"lightgbm/lightgbm-v3.zip"``).
``root`` is a local path, a ``file://`` URL, or any fsspec URL (``s3://bucket/prefix``,
``gs://...``, ``az://...``); ``options`` are fsspec's storage options (``[storage] options``),
and credentials otherwise come from the usual environment (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ...).

Writes are atomic and verified. On a local disk: a temporary file, fsync, rename. On object
storage an object appears whole or not at all (a single PUT, or a multipart upload completed
only when the file is closed), and once written it is read back and its sha256 compared with
the bytes meant to be stored; a mismatch removes it and raises. A missing or changed object is
an ``ArtifactIntegrityError`` that names its URL.

``ReportStore`` is the reports folder (``[drift] reports_dir``): files are written to a local
folder and, when the reports live on object storage, uploaded there; links to them
(``link(path)``) are what people can open: ``file://`` for a local folder, a presigned URL or
``[storage] public_base_url`` followed by the key for object storage.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

from retrain.errors import ArtifactIntegrityError, ConfigError
from retrain.failpoints import failpoint

log = logging.getLogger("retrain")

UPLOAD_CHUNK = 8 << 20  # bytes written per call to an object store's file


def is_url(location: str | Path) -> bool:
    """True for an fsspec URL other than ``file://`` (which is a local path)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local_path(location: str | Path) -> str:
    text = str(location)
    return text[len("file://"):] if text.startswith("file://") else text


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename; then fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        failpoint("artifact:before-replace")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ObjectStore:
    """A folder of objects, local or on object storage (see the module's docstring)."""

    def __init__(self, root: str | Path, options: dict[str, Any] | None = None):
        self.remote = is_url(root)
        self.root = str(root).rstrip("/") if self.remote else str(Path(local_path(root)))
        self.options = dict(options or {})

    def __repr__(self) -> str:
        return f"ObjectStore({self.root!r})"

    @cached_property
    def _fs_and_base(self):
        import fsspec  # late: only stores on object storage need it
        try:
            fs, base = fsspec.core.url_to_fs(self.root, **self.options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"{self.root}: cannot open this storage URL ({exc}); "
                              "s3:// needs s3fs, gs:// gcsfs, az:// adlfs") from None
        return fs, base.rstrip("/")

    @property
    def fs(self):
        return self._fs_and_base[0]

    def _path(self, key: str) -> str:
        """The key's path in the filesystem (local path, or the URL's path part)."""
        key = key.lstrip("/")
        if not self.remote:
            return str(Path(self.root) / key)
        return f"{self._fs_and_base[1]}/{key}"

    def url(self, key: str) -> str:
        """The key's full location, as people and errors name it."""
        return self._path(key) if not self.remote else f"{self.root}/{key.lstrip('/')}"

    def local_file(self, key: str) -> Path | None:
        """The key's file on the local disk; None on object storage."""
        return None if self.remote else Path(self._path(key))

    # Writing and reading --------------------------------------------------------------------
    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``key`` atomically and check what was stored; returns its sha256."""
        expected = sha256_bytes(data)
        if not self.remote:
            atomic_write_bytes(Path(self._path(key)), data)
            return expected
        path = self._path(key)
        try:
            with self.fs.open(path, "wb") as fh:
                half = len(data) // 2
                for start in range(0, len(data), UPLOAD_CHUNK):
                    fh.write(data[start:start + UPLOAD_CHUNK])
                    if start <= half < start + UPLOAD_CHUNK:
                        failpoint("artifact:half-uploaded")
        except OSError as exc:
            raise ArtifactIntegrityError(f"{self.url(key)}: could not be written: {exc}") from None
        self.fs.invalidate_cache(path)
        stored = self.read(key)
        if sha256_bytes(stored) != expected:
            self.delete(key)
            raise ArtifactIntegrityError(
                f"{self.url(key)}: the stored object's sha256 differs from the bytes written; "
                "it was removed, retry")
        return expected

    def read(self, key: str, what: str = "") -> bytes:
        """The object's bytes; a missing one is an ``ArtifactIntegrityError`` naming it (as
        ``what``, e.g. "model artifact", and its URL)."""
        path = self._path(key)
        name = f"{what} {self.url(key)}" if what else self.url(key)
        try:
            if not self.remote:
                return Path(path).read_bytes()
            return self.fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactIntegrityError(f"{name} is missing") from None
        except IsADirectoryError:
            raise ArtifactIntegrityError(f"{name} is a folder, not a file") from None
        except OSError as exc:
            raise ArtifactIntegrityError(f"{name} cannot be read: {exc}") from None

    def verified(self, key: str, expected_sha256: str, what: str = "model artifact") -> bytes:
        """The object's bytes, if it is there and its sha256 is the one recorded."""
        data = self.read(key, what)
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            raise ArtifactIntegrityError(
                f"{what} {self.url(key)} has sha256 {actual[:12]}..., the registry recorded "
                f"{expected_sha256[:12]}...: refusing to load a changed or corrupt file")
        return data

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return Path(path).is_file() if not self.remote else self.fs.isfile(path)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not self.remote:
            Path(path).unlink(missing_ok=True)
        elif self.fs.exists(path):
            self.fs.rm(path)

    def keys(self, prefix: str = "") -> list[str]:
        """Keys of the files below ``prefix`` (a folder), sorted."""
        base = self._path(prefix).rstrip("/")
        if not self.remote:
            root = Path(base)
            return sorted(p.relative_to(self.root).as_posix() for p in root.rglob("*")
                          if p.is_file()) if root.is_dir() else []
        self.fs.invalidate_cache(base)
        strip = self._fs_and_base[1] + "/"
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        return sorted(p[len(strip):] for p in found if p.startswith(strip))

    def link(self, key: str, storage=None) -> str:
        """A URL people can open for the object: ``file://`` on a local disk; on object
        storage a presigned URL (``[storage] links = "presigned"``) or ``public_base_url``
        followed by the key."""
        if not self.remote:
            return Path(self._path(key)).resolve().as_uri()
        if storage is not None and storage.links == "public":
            return f"{storage.public_base_url.rstrip('/')}/{quote(key.lstrip('/'))}"
        hours = storage.presign_expires_hours if storage is not None else 168.0
        try:
            return self.fs.sign(self._path(key), expiration=int(hours * 3600))
        except NotImplementedError:
            log.warning("%s cannot presign URLs; set [storage] links = \"public\" and "
                        "public_base_url to link reports", self.root)
            return self.url(key)


class ReportStore:
    """The reports folder (``[drift] reports_dir``).

    Files are written below ``root``, a local folder: the reports folder itself, or, when the
    reports live on object storage, a local staging folder whose files ``publish`` uploads to
    the same keys there. ``link(path)`` publishes a file and returns a URL people can open.
    """

    def __init__(self, location: str, root: Path, options: dict[str, Any] | None = None,
                 storage=None):
        self.location = location
        self.root = Path(root)
        self.store = ObjectStore(location, options) if is_url(location) else None
        self.storage = storage
        self._published: dict[str, tuple[int, int]] = {}  # key -> (mtime_ns, size) uploaded

    @classmethod
    def from_settings(cls, settings) -> "ReportStore":
        location = settings.drift.reports_dir
        if is_url(location):
            digest = hashlib.sha256(location.encode()).hexdigest()[:12]
            root = settings.resolve(".retrain/report-staging") / digest
        else:
            root = settings.resolve(local_path(location))
        return cls(location, root, settings.storage.options, settings.storage)

    @property
    def remote(self) -> bool:
        return self.store is not None

    def key(self, path: str | Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise ValueError(f"{path} is not below the reports folder {self.root}") from None

    def publish(self, path: str | Path) -> str:
        """Upload a file written below ``root`` (again only if it changed); returns its key."""
        key = self.key(path)
        if self.store is not None:
            st = os.stat(path)
            if self._published.get(key) != (st.st_mtime_ns, st.st_size):
                self.store.write(key, Path(path).read_bytes())
                self._published[key] = (st.st_mtime_ns, st.st_size)
        return key

    def upload(self, *paths: str | Path | None) -> None:
        """Publish report files; one that cannot be uploaded is logged, never raised (a report
        is for people, not a reason for a run to fail)."""
        for path in paths:
            if path is None or self.store is None:
                continue
            try:
                self.publish(path)
            except (ArtifactIntegrityError, OSError) as exc:
                log.warning("report %s was not uploaded to %s: %s", path, self.location, exc)

    def link(self, path: str | Path) -> str:
        """A URL people can open for a report file (published first when remote)."""
        path = Path(path)
        if self.store is None:
            return path.resolve().as_uri()
        try:
            return self.store.link(self.publish(path), self.storage)
        except (ArtifactIntegrityError, OSError) as exc:
            log.warning("report %s was not uploaded to %s: %s", path, self.location, exc)
            return path.resolve().as_uri()

    def fetch(self, folder: str | Path, suffix: str = "") -> None:
        """Copy into ``folder`` (below ``root``) the files stored below its key that it lacks
        (reports other workers wrote), so pages that read earlier reports see them all."""
        if self.store is None:
            return
        prefix = self.key(folder)
        for key in self.store.keys(prefix):
            if not key.endswith(suffix):
                continue
            target = self.root / key
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.store.read(key))
