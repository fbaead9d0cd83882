"""ModelStore on a local folder and on a real S3 server: publish, resolve, alias, pull, delete."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from helixserve.errors import (
    CacheError,
    IntegrityError,
    InvalidName,
    ManifestError,
    ModelNotFound,
    StorePermissionError,
    StoreUnavailable,
    VersionConflict,
)
from helixserve.inputs.sequence import SequenceSchema
from helixserve.store import Manifest, ModelStore, OutputSchema, make_manifest, parse_ref
from helixserve.store.bundle import sha256_bytes
from tests.conftest import s3_options
from tests.support.onnx_models import gc_binary_model
from tests.support.s3server import READ_ONLY, S3Server

MODEL = gc_binary_model(50)


def bundle(
    card: str = "# primer binding\n", name: str = "primer-binding"
) -> tuple[Manifest, dict[str, bytes]]:
    files = {"model.onnx": MODEL, "card.md": card.encode(), "plots/loss.json": b"[1, 0.5]"}
    manifest = make_manifest(
        files,
        name=name,
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
        metrics={"accuracy": 0.99},
    )
    return manifest, files


def publish(store: ModelStore, card: str = "# card\n", name: str = "primer-binding") -> Manifest:
    manifest, files = bundle(card, name)
    return store.publish(manifest, files)


def flip_byte(store: ModelStore, name: str, version: int, relative: str) -> None:
    """Corrupt one byte of a stored file, the way a bad disk or a bad copy would."""
    path = store.location.path(name, "versions", str(version), relative)
    data = bytearray(store.location.read(path))
    data[len(data) // 2] ^= 0xFF
    store.location.write(path, bytes(data))


def test_publish_assigns_versions_and_resolves(store: ModelStore) -> None:
    first = publish(store, "# v1\n")
    second = publish(store, "# v2\n")
    assert (first.version, second.version) == (1, 2)
    assert store.list_models() == ["primer-binding"]
    assert store.versions("primer-binding") == [1, 2]
    assert store.resolve("primer-binding") == 2
    assert store.resolve("primer-binding@1") == 1
    assert store.manifest("primer-binding@1") == first
    assert store.manifest("primer-binding").files["card.md"] == sha256_bytes(b"# v2\n")


def test_aliases_move_and_default_to_production(store: ModelStore) -> None:
    publish(store)
    publish(store)
    store.set_alias("primer-binding", "production", 1)
    store.set_alias("primer-binding", "staging", 2)
    assert store.aliases("primer-binding") == {"production": 1, "staging": 2}
    assert store.resolve("primer-binding") == 1  # production wins over latest
    assert store.resolve("primer-binding@staging") == 2
    store.set_alias("primer-binding", "production", 2)
    assert store.resolve("primer-binding@production") == 2
    store.delete_alias("primer-binding", "staging")
    assert store.aliases("primer-binding") == {"production": 2}


def test_not_found_messages_list_what_exists(store: ModelStore) -> None:
    publish(store)
    with pytest.raises(ModelNotFound) as info:
        store.resolve("primer-binding@7")
    assert str(info.value) == "primer-binding has no version 7; its versions are 1."
    with pytest.raises(ModelNotFound) as info:
        store.resolve("primer-binding@canary")
    assert str(info.value) == "primer-binding has no alias 'canary'; its aliases are (none)."
    with pytest.raises(ModelNotFound) as info:
        store.resolve("yeast-utr")
    assert str(info.value) == (
        f"no model named 'yeast-utr' in the store {store.uri}; models: primer-binding. Add one "
        "with `helixserve train ...`, `helixserve models import MODEL.onnx ...` or "
        "`helixserve models pull NAME --from URI`."
    )
    with pytest.raises(ModelNotFound, match=r"no version 5; its versions are 1\."):
        store.set_alias("primer-binding", "production", 5)


def test_half_written_version_is_invisible(store: ModelStore) -> None:
    publish(store)
    folder = store.location.path("primer-binding", "versions", "2")
    store.location.write(f"{folder}/model.onnx", MODEL[:100])  # a publisher died here
    assert store.versions("primer-binding") == [1]
    assert store.resolve("primer-binding") == 1
    assert publish(store).version == 2  # the number was never claimed, so it is free


def test_concurrent_publishes_get_distinct_versions(store: ModelStore) -> None:
    results: list[Manifest] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results.append(publish(store, f"# writer {i}\n"))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(m.version for m in results) == [1, 2, 3, 4, 5, 6]
    for manifest in results:  # nobody's files were clobbered by another writer
        _, files = store.read_files(f"primer-binding@{manifest.version}")
        assert sha256_bytes(files["card.md"]) == manifest.files["card.md"]


def test_pull_caches_by_hash_and_verifies(store: ModelStore, tmp_path: Path) -> None:
    publish(store)
    local = store.pull("primer-binding")
    assert local.path.parent == tmp_path / "cache"
    assert (local.path / "model.onnx").read_bytes() == MODEL
    assert (local.path / "plots" / "loss.json").read_bytes() == b"[1, 0.5]"
    assert store.pull("primer-binding@1").path == local.path


def test_corrupted_file_is_refused_and_the_good_version_stays_usable(store: ModelStore) -> None:
    publish(store)
    good = store.pull("primer-binding@1")
    manifest = publish(store)
    flip_byte(store, "primer-binding", 2, "model.onnx")
    with pytest.raises(IntegrityError) as info:
        store.pull("primer-binding@2")
    message = str(info.value)
    assert message.startswith("model.onnx of primer-binding@2 is corrupted: its sha256 is ")
    assert f"but the manifest says {manifest.files['model.onnx']}." in message
    assert message.endswith("publish the model again, or use another version.")
    assert store.pull("primer-binding@1").path == good.path


def test_truncated_file_is_refused(store: ModelStore) -> None:
    publish(store)
    path = store.location.path("primer-binding", "versions", "1", "model.onnx")
    store.location.write(path, MODEL[: len(MODEL) // 3])
    with pytest.raises(IntegrityError, match=r"^model\.onnx of primer-binding@1 is corrupted"):
        store.pull("primer-binding@1")


def test_damaged_cache_is_fetched_again(store: ModelStore) -> None:
    publish(store)
    local = store.pull("primer-binding")
    (local.path / "model.onnx").write_bytes(b"garbage")
    again = store.pull("primer-binding")
    assert (again.path / "model.onnx").read_bytes() == MODEL


def test_delete_refuses_an_aliased_version_unless_forced(store: ModelStore) -> None:
    publish(store)
    publish(store)
    store.set_alias("primer-binding", "production", 2)
    with pytest.raises(VersionConflict) as info:
        store.delete("primer-binding", 2)
    assert str(info.value) == (
        "primer-binding@2 is what alias production points to; promote another version first, "
        "or delete with --force (which removes the alias too)."
    )
    store.delete("primer-binding", 2, force=True)
    assert store.versions("primer-binding") == [1]
    assert store.aliases("primer-binding") == {}
    assert publish(store).version == 3  # numbers are never reused


def test_copy_between_stores(store: ModelStore, tmp_path: Path) -> None:
    publish(store, "# original\n")
    other = ModelStore.open(str(tmp_path / "other"), cache_dir=tmp_path / "cache2")
    copied = store.copy_to(other, "primer-binding")
    assert copied.version == 1
    assert other.read_files("primer-binding@1")[1]["card.md"] == b"# original\n"


@pytest.mark.parametrize(
    "ref",
    ["../etc", "a/b", "..", "x@../y", "a\x00b", "x@-1", "x@0", " x", "x" * 65, "x@1/2", ""],
)
def test_unsafe_names_are_refused(ref: str) -> None:
    with pytest.raises(InvalidName):
        parse_ref(ref)


def test_unsafe_name_message() -> None:
    with pytest.raises(InvalidName) as info:
        parse_ref("../../etc/passwd")
    assert str(info.value) == (
        "model name '../../etc/passwd' is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, with no '..', slashes or spaces (e.g. 'primer-binding')."
    )
    with pytest.raises(InvalidName) as info:
        parse_ref("model@\x1b[31m")
    assert "'\\x1b[31m'" in str(info.value)


def test_read_only_credentials_serve_but_cannot_publish(
    s3_server: S3Server, tmp_path: Path
) -> None:
    uri = "s3://models/read-only-check"
    writer = ModelStore.open(uri, s3=s3_options(s3_server), cache_dir=tmp_path / "c1")
    publish(writer)
    writer.set_alias("primer-binding", "production", 1)
    reader = ModelStore.open(uri, s3=s3_options(s3_server, READ_ONLY), cache_dir=tmp_path / "c2")
    assert reader.list_models() == ["primer-binding"]
    assert reader.resolve("primer-binding") == 1
    assert (reader.pull("primer-binding").path / "model.onnx").read_bytes() == MODEL
    with pytest.raises(StorePermissionError) as info:
        publish(reader)
    assert str(info.value).startswith(
        "the store at s3://models/read-only-check refused to publish primer-binding ("
    )
    assert str(info.value).endswith(
        "the credentials are read-only or wrong, or the folder is not writable; use credentials "
        "or a folder that allow it."
    )
    with pytest.raises(StorePermissionError):
        reader.set_alias("primer-binding", "staging", 1)
    with pytest.raises(StorePermissionError):  # a refused delete must never look like success
        reader.delete("primer-binding", 1, force=True)
    with pytest.raises(StorePermissionError):
        reader.delete_alias("primer-binding", "production")
    assert writer.versions("primer-binding") == [1]
    assert writer.aliases("primer-binding") == {"production": 1}


def test_unreachable_store(tmp_path: Path) -> None:
    from helixserve.store import S3Options

    dead = ModelStore.open(
        "s3://models/x",
        s3=S3Options(endpoint_url="http://127.0.0.1:9", key="a", secret="b", region="us-east-1"),
    )
    with pytest.raises(StoreUnavailable) as info:
        dead.list_models()
    assert str(info.value).startswith("the store at s3://models/x could not list models (")


def test_alias_file_written_as_plain_json(store: ModelStore) -> None:
    publish(store)
    store.set_alias("primer-binding", "production", 1)
    raw = store.location.read(store.location.path("primer-binding", "aliases", "production.json"))
    assert json.loads(raw) == {"version": 1}


def test_aws_environment_conventions(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "RW")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "RWS")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    store = ModelStore.open("s3://models/env-check", cache_dir=tmp_path / "cache")
    assert publish(store).version == 1
    assert store.list_models() == ["primer-binding"]


# --- hostile or damaged store contents (found in review) ------------------------------------------


@pytest.mark.parametrize(
    "content", [b"not json", b'{"version": true}', b'{"version": "1"}', b"[1]"]
)
def test_damaged_alias_is_an_error_not_a_silent_fallback(store: ModelStore, content: bytes) -> None:
    publish(store)
    publish(store)
    store.location.write(
        store.location.path("primer-binding", "aliases", "production.json"), content
    )
    for ref in ("primer-binding", "primer-binding@production"):
        with pytest.raises(ManifestError) as info:
            store.resolve(ref)
        assert str(info.value) == (
            "alias file primer-binding/aliases/production.json is damaged: it should hold "
            '{"version": N}. Set the alias again: helixserve models promote primer-binding@N '
            "production"
        )


def test_dangling_production_alias_is_not_replaced_by_latest(store: ModelStore) -> None:
    publish(store)
    publish(store)
    store.set_alias("primer-binding", "production", 1)
    store.location.fs.rm(store.location.path("primer-binding", "versions", "1"), recursive=True)
    with pytest.raises(ModelNotFound) as info:
        store.resolve("primer-binding")
    assert str(info.value) == (
        "alias primer-binding@production points to version 1, which no longer exists; promote "
        "another version (2)."
    )


def test_manifest_that_describes_another_model(store: ModelStore) -> None:
    publish(store, name="a")
    other = publish(store, name="b")
    store.location.write(
        store.location.path("a", "versions", "1", "manifest.json"), other.to_json()
    )
    with pytest.raises(IntegrityError) as info:
        store.manifest("a@1")
    assert str(info.value) == (
        "manifest.json of a@1 describes b@1; the store was edited by hand. Publish the model again."
    )


def test_odd_version_folders_are_ignored(store: ModelStore) -> None:
    publish(store)
    for odd in ("007", "²", "x"):
        folder = store.location.path("primer-binding", "versions", odd)
        store.location.write(f"{folder}/manifest.json", b"{}")
    assert store.versions("primer-binding") == [1]
    for ref in ("primer-binding@²", "primer-binding@007", "primer-binding@١"):
        with pytest.raises(InvalidName):
            store.resolve(ref)


def test_cache_without_manifest_is_repaired(store: ModelStore) -> None:
    publish(store)
    local = store.pull("primer-binding")
    (local.path / "manifest.json").unlink()
    (local.path / "model.onnx").write_bytes(b"junk")
    again = store.pull("primer-binding")
    assert (again.path / "model.onnx").read_bytes() == MODEL
    assert (again.path / "manifest.json").is_file()


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cache-file").write_text("I am a file")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache-file" / "x")
    publish(store)
    with pytest.raises(CacheError) as info:
        store.pull("primer-binding")
    assert str(info.value).startswith(f"cannot write to the local model cache {tmp_path}")
    assert str(info.value).endswith("set HELIXSERVE_CACHE_DIR to a folder you can write to.")


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    store = ModelStore.open(str(tmp_path / "file"), cache_dir=tmp_path / "cache")
    with pytest.raises(StoreUnavailable) as info:
        publish(store)
    assert str(info.value).startswith(f"the store folder {tmp_path / 'file'} cannot be used to ")


def test_delete_alias_that_does_not_exist(store: ModelStore) -> None:
    publish(store)
    with pytest.raises(ModelNotFound, match=r"^primer-binding has no alias 'staging'\.$"):
        store.delete_alias("primer-binding", "staging")


def _publish_in_process(uri: str, card: str) -> int:
    store = ModelStore.open(uri)
    manifest, files = bundle(card)
    return store.publish(manifest, files).version


def test_concurrent_publishes_from_separate_processes(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        versions = pool.starmap(_publish_in_process, [(uri, f"# {i}\n") for i in range(8)])
    assert sorted(versions) == list(range(1, 9))
    assert ModelStore.open(uri).versions("primer-binding") == list(range(1, 9))
