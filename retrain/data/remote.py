"""A feature store on object storage: ``[data] source = "s3://bucket/features/"``.

fsspec lists the files (and tells when one changed); polars scans them lazily with its own
cloud readers, to which ``[storage] options`` are handed in polars' names. Credentials and
the endpoint otherwise come from the environment both read (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ...).
"""

from __future__ import annotations

import os
from typing import IO, Any

from retrain.errors import DataValidationError
from retrain.storage import is_url

SUFFIXES = (".parquet", ".csv")
# fsspec's (s3fs's) option names -> polars' (object_store's) for S3.
_S3_OPTIONS = {"key": "aws_access_key_id", "secret": "aws_secret_access_key",
               "token": "aws_session_token", "endpoint_url": "aws_endpoint_url",
               "region_name": "aws_region"}


def _fs(url: str, options: dict[str, Any] | None):
    import fsspec  # late: only sources on object storage need it
    return fsspec.core.url_to_fs(url, **(options or {}))


def remote_files(source: str, options: dict[str, Any] | None = None) -> list[str]:
    """The Parquet and CSV files at ``source`` (a folder URL, searched recursively, or a glob),
    as full URLs, sorted."""
    try:
        fs, path = _fs(source, options)
        protocol = source.split("://", 1)[0]
        fs.invalidate_cache()  # files other processes added since the last listing
        if any(ch in path for ch in "*?["):
            found = fs.glob(path)
        elif fs.isfile(path):
            found = [path]
        else:
            found = fs.find(path)
    except FileNotFoundError:
        return []
    except (OSError, ValueError, ImportError) as exc:
        raise DataValidationError(None, f"{source}: the feature store cannot be listed "
                                        f"({type(exc).__name__}: {exc})") from None
    return sorted(f"{protocol}://{p}" for p in found if p.lower().endswith(SUFFIXES))


def file_stamp(path: str, options: dict[str, Any] | None = None) -> tuple:
    """What tells that a file changed: (path, mtime or ETag, size)."""
    if not is_url(path):
        st = os.stat(path)
        return (path, st.st_mtime_ns, st.st_size)
    fs, p = _fs(path, options)
    info = fs.info(p)
    return (path, str(info.get("ETag") or info.get("LastModified") or info.get("mtime")),
            info.get("size"))


def open_file(path: str, options: dict[str, Any] | None = None) -> IO[bytes]:
    """A local file or an object, opened for reading bytes."""
    if not is_url(path):
        return open(path, "rb")
    fs, p = _fs(path, options)
    return fs.open(p, "rb")


def polars_storage_options(url: str, options: dict[str, Any] | None) -> dict[str, str] | None:
    """``[storage] options`` in the names polars' cloud readers take (S3 only; for other
    stores polars reads the environment)."""
    if not options or not url.startswith(("s3://", "s3a://")):
        return None
    out = {}
    flat = dict(options)
    flat.update(flat.pop("client_kwargs", None) or {})
    for name, value in flat.items():
        if name in _S3_OPTIONS and value is not None:
            out[_S3_OPTIONS[name]] = str(value)
    if out.get("aws_endpoint_url", "").startswith("http://"):
        out["aws_allow_http"] = "true"
    return out or None
