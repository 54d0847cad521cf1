"""Where a run's files and data live: a local path or an fsspec URL (``s3://bucket/prefix``).

Every file access of dino_core and the worker to a run directory, a checkpoint or a shard goes
through :func:`filesystem`, so one place decides how a URL is opened.

S3 and S3-compatible stores (MinIO, Ceph, moto's test server) are reached through s3fs with
the standard AWS settings, read from the environment of the process that opens the file:

- endpoint: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (unset = AWS itself);
- credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``),
  else botocore's own chain (``AWS_PROFILE``, instance or pod role);
- region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``.

Directory listings are never cached: a checkpoint written by another process (the previous
attempt, another rank) must be visible to the next listing.

An object store has no rename, so :func:`publish` writes a file's bytes with a single ``PUT``
(a multipart upload above 100 MiB, completed at the end): the object appears under its final
key only once it is whole, and a reader never sees part of it. On a local disk the bytes go
to a temporary name in the same directory, are fsynced and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

S3_PROTOCOLS = ("s3", "s3a")


def is_remote(url: str) -> bool:
    """True for a URL with a scheme other than ``file://`` (s3://, gs://, memory://...)."""
    return "://" in url and not url.startswith("file://")


def s3_options() -> dict[str, Any]:
    """s3fs options from the AWS environment (see the module docstring)."""
    opts: dict[str, Any] = {"use_listings_cache": False}
    endpoint = _env("AWS_ENDPOINT_URL_S3") or _env("AWS_ENDPOINT_URL")
    if endpoint:
        opts["endpoint_url"] = endpoint
    key, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        opts["key"], opts["secret"] = key, secret
        token = _env("AWS_SESSION_TOKEN")
        if token:
            opts["token"] = token
    region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
    if region:
        opts["client_kwargs"] = {"region_name": region}
    return opts


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem holding ``url`` and the path inside it (``bucket/key`` for S3)."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    options = s3_options() if protocol in S3_PROTOCOLS else {}
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, str(path)


def as_url(fs: fsspec.AbstractFileSystem, path: str, like: str) -> str:
    """``path`` of ``fs`` in the style of ``like``: a URL for remote stores, else a path."""
    return str(fs.unstrip_protocol(path)) if is_remote(like) else path


def join(url: str, *parts: str) -> str:
    """``url/part/...`` for paths and URLs alike."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def publish(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` so that no reader ever sees a partial file (module docstring)."""
    fs, path = filesystem(url)
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def upload_tree(local_dir: str, url: str) -> list[str]:
    """Publish every file under ``local_dir`` to the same relative path under ``url``."""
    out = []
    for parent, _, files in sorted(os.walk(local_dir)):
        for name in sorted(files):
            path = os.path.join(parent, name)
            target = join(url, os.path.relpath(path, local_dir).replace(os.sep, "/"))
            with open(path, "rb") as f:
                publish(target, f.read())
            out.append(target)
    return out
