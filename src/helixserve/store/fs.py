"""Store locations: one fsspec code path for local folders and S3, with errors translated.

Contract:
- :func:`open_location` turns ``/some/dir``, ``~/dir``, ``file:///dir`` or ``s3://bucket/prefix``
  into a :class:`Location` (an fsspec filesystem plus a root path). S3 needs the ``s3`` extra
  (s3fs); credentials, region and endpoint follow the AWS conventions (``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL``), and :class:`S3Options` given explicitly override them.
- :meth:`Location.path` joins validated parts under the root: callers pass only names that
  :mod:`helixserve.store.names` accepted, so no path leaves the root.
- :meth:`Location.create_exclusive` writes an object only if it does not exist (``O_EXCL`` on a
  local disk, ``If-None-Match: *`` on S3) and returns ``False`` when it already exists: the
  primitive that makes concurrent publishes safe.
- :func:`translating` maps fsspec / botocore failures to
  :class:`~helixserve.errors.StorePermissionError` (read-only credentials),
  :class:`~helixserve.errors.StoreUnavailable` (anything else: endpoint down, bad credentials),
  leaving ``FileNotFoundError`` to the caller.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from helixserve.errors import HelixError, StorePermissionError, StoreUnavailable


@dataclass(frozen=True)
class S3Options:
    """Explicit S3 settings; ``None`` leaves the AWS default chain in charge."""

    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = None
    secret: str | None = None
    profile: str | None = None


class Location:
    """A filesystem and a root folder inside it."""

    def __init__(self, fs: Any, root: str, uri: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri
        self.is_local = isinstance(fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        """``root/part/part...`` (parts must be validated names)."""
        return "/".join([self.root, *parts])

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Write ``data`` at ``path`` unless something is there; ``False`` if it was."""
        if self.is_local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return True
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except OSError as err:
            if _is_precondition_failure(err):
                return False
            raise
        return True

    def write(self, path: str, data: bytes) -> None:
        """Write (replace) one object; atomic for readers on a local disk and on S3."""
        if self.is_local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
            Path(tmp).write_bytes(data)
            os.replace(tmp, path)  # atomic on one filesystem: readers see old or new
        else:
            self.fs.pipe_file(path, data)

    def read(self, path: str) -> bytes:
        """Read one whole object; ``FileNotFoundError`` if it is not there."""
        data: bytes = self.fs.cat_file(path)
        return data

    def list_names(self, path: str) -> list[str]:
        """Names of the entries directly under ``path`` (``[]`` if it does not exist)."""
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries})


def _is_precondition_failure(err: OSError) -> bool:
    text = str(err).lower()
    return "precondition" in text or "pre-conditions" in text or "412" in text


def open_location(uri: str, s3: S3Options | None = None) -> Location:
    """Open a store location from a folder path or URI; see the module contract."""
    if uri.startswith("s3://"):
        return _open_s3(uri, s3 or S3Options())
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise HelixError(
            f"store URI {uri!r} uses '{scheme}://', which helixserve does not support; use a "
            "folder path, file:///folder or s3://bucket/prefix."
        )
    folder = Path(uri.removeprefix("file://")).expanduser().resolve()
    return Location(fsspec.filesystem("file"), folder.as_posix(), folder.as_uri())


def _open_s3(uri: str, options: S3Options) -> Location:
    try:
        import s3fs  # noqa: PLC0415 - optional extra, imported only for s3:// stores
    except ImportError:
        raise HelixError(
            f"store {uri} is on S3, which needs the s3 extra: pip install 'helixserve[s3]'."
        ) from None
    bucket_and_prefix = uri.removeprefix("s3://").rstrip("/")
    if not bucket_and_prefix or bucket_and_prefix.startswith("/"):
        raise HelixError(f"store URI {uri!r} names no bucket; use s3://bucket/prefix.")
    endpoint = (
        options.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    client: dict[str, str] = {}
    if endpoint:
        client["endpoint_url"] = endpoint
    region = options.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    kwargs: dict[str, Any] = {
        "client_kwargs": client,
        "skip_instance_cache": True,
        "use_listings_cache": False,  # other processes publish: always list afresh
    }
    if options.key is not None:
        kwargs.update(key=options.key, secret=options.secret)
    if options.profile is not None:
        kwargs["profile"] = options.profile
    fs = s3fs.S3FileSystem(**kwargs)
    return Location(fs, bucket_and_prefix, uri.rstrip("/"))


@contextmanager
def translating(action: str, location: Location) -> Iterator[None]:
    """Translate storage failures during ``action`` into helixserve errors."""
    try:
        yield
    except (FileNotFoundError, HelixError):
        raise
    except PermissionError as err:
        raise StorePermissionError(
            f"the store at {location.uri} refused to {action} ({_short(err)}): the credentials "
            "are read-only or wrong, or the folder is not writable; use credentials or a folder "
            "that allow it."
        ) from None
    except (OSError, ValueError) as err:
        if location.is_local:
            raise StoreUnavailable(
                f"the store folder {location.root} cannot be used to {action} ({_short(err)}); "
                "check that it is a folder you can read and write."
            ) from None
        raise StoreUnavailable(
            f"the store at {location.uri} could not {action} ({_short(err)}); check that it is "
            "reachable and that the endpoint and credentials are right."
        ) from None
    except Exception as err:
        if type(err).__module__.startswith(("botocore", "aiobotocore", "aiohttp")):
            raise StoreUnavailable(
                f"the store at {location.uri} could not {action} ({_short(err)}); check the "
                "endpoint URL, the network and the credentials."
            ) from None
        raise


def _short(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) <= 200 else text[:200] + "..."
