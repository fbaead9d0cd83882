"""Shared fixtures: the real datasets in ../shared/data and small helpers."""

from __future__ import annotations

import gzip
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from helixserve.store import ModelStore, S3Options
from tests.support.postgres import database_url, db, postgres_server  # noqa: F401 (fixtures)
from tests.support.s3server import READ_WRITE, S3Server, seaweedfs

# Property tests check behaviour, not speed (speed lives in benchmarks/): on a shared 2-core
# machine one example can take 400 ms, so hypothesis's per-example deadline is off everywhere.
settings.register_profile("helixserve", deadline=None)
settings.load_profile("helixserve")

# Tests build their own stores and expect to see only what they put there: the pretrained models
# shipped in the package stay out of them (and out of the subprocesses that inherit this), except
# in tests/test_pretrained.py, which checks that a fresh install sees them everywhere.
os.environ["HELIXSERVE_PRETRAINED"] = "false"
# Servers the tests start train nothing: no worker process beside them (tests/test_worker.py
# starts workers itself, and checks that `helixserve serve` starts one when asked).
os.environ["HELIXSERVE_WORKER"] = "false"
# Nor do tests touch the person's own workspace (~/.helixserve): one throw-away workspace for the
# session, unless a test names its own.
_WORKSPACE = Path(tempfile.mkdtemp(prefix="helixserve-tests-"))
os.environ.setdefault("HELIXSERVE_DATABASE_URL", f"sqlite:///{_WORKSPACE / 'workspace.db'}")
os.environ.setdefault("HELIXSERVE_WORKSPACE_STORE", str(_WORKSPACE / "workspace"))

ROOT = Path(__file__).resolve().parents[1]
FILES = Path(__file__).resolve().parent / "files"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real datasets. Absent on a developer's machine: skipped with the reason. Absent in CI
    (``CI=true``, where shared/ must sit beside the clone): a failure, so they never go unrun."""
    if not SHARED_DATA.is_dir():
        message = f"real datasets not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI must provide shared/ beside the clone)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def files() -> Path:
    return FILES


def write(path: Path, data: bytes | str, *, gz: bool = False) -> Path:
    """Write text or bytes to ``path`` (gzip-compressed when ``gz``) and return it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real SeaweedFS S3 server for the session, with a ``models`` bucket."""
    import s3fs

    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        fs = s3fs.S3FileSystem(
            key=READ_WRITE[0],
            secret=READ_WRITE[1],
            skip_instance_cache=True,
            client_kwargs={"endpoint_url": server.endpoint, "region_name": "us-east-1"},
        )
        fs.mkdir("models")
        yield server


def s3_options(server: S3Server, credentials: tuple[str, str] = READ_WRITE) -> S3Options:
    return S3Options(
        endpoint_url=server.endpoint, region="us-east-1", key=credentials[0], secret=credentials[1]
    )


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    """An empty model store: a local folder, or a fresh prefix in the real S3 server."""
    cache = tmp_path / "cache"
    if request.param == "file":
        return ModelStore.open(str(tmp_path / "store"), cache_dir=cache)
    server = request.getfixturevalue("s3_server")
    uri = f"s3://models/{uuid.uuid4().hex}"
    return ModelStore.open(uri, s3=s3_options(server), cache_dir=cache)
