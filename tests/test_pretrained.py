"""The pretrained models shipped in the package, seen by a fresh install with nothing configured.

Every other test file hides them (tests/conftest.py sets ``HELIXSERVE_PRETRAINED=false``); here the
commands run as a new user's would: a fresh HOME, no ``HELIXSERVE_*`` variable at all.
"""

from __future__ import annotations

import csv
import html
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helixserve.errors import StorePermissionError
from helixserve.store import Lineage, ModelStore
from helixserve.store.configured import PRETRAINED_STORE, open_layered
from tests.support.server import free_port, publish_gc

ZOO = ["amr-resistance", "primer-binding", "rxrx1-celltype", "tumor-wisconsin", "yeast-utr"]
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "examples"


@pytest.fixture
def fresh(tmp_path: Path) -> dict[str, str]:
    """A new user's environment: an empty HOME, no helixserve settings."""
    home = tmp_path / "home"
    home.mkdir()
    keep = {k: v for k, v in os.environ.items() if not k.startswith("HELIXSERVE_")}
    return {**keep, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "COLUMNS": "120"}


def helixserve(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helixserve", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_models_list_shows_the_zoo_in_a_fresh_home(fresh: dict[str, str], tmp_path: Path) -> None:
    listed = helixserve(fresh, tmp_path, "models", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [
        line.split()
        for line in listed.stdout.splitlines()
        if line.split()[:1] in ([n] for n in ZOO)
    ]
    assert [row[0] for row in rows] == ZOO
    assert all(row[-1] == "zoo" for row in rows)
    # yeast-utr@2 is the int8 version the server explains yeast-utr@1 with (docs/explain.md)
    assert ["yeast-utr", "1,", "2", "production→1", "regression", "r2", "0.595", "zoo"] in rows
    assert [
        "amr-resistance",
        "1",
        "production→1",
        "binary",
        "isolate_accuracy",
        "0.867",
        "zoo",
    ] in rows


def test_predict_by_name_in_a_fresh_home(fresh: dict[str, str], tmp_path: Path) -> None:
    done = helixserve(
        fresh,
        tmp_path,
        "predict",
        "primer-binding",
        str(EXAMPLES / "primers.fasta"),
        "-o",
        "scores.csv",
    )
    assert done.returncode == 0, done.stderr
    with (tmp_path / "scores.csv").open(newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert len(scored) == 6  # the 6 valid records of the example file; 4 refused
    assert (tmp_path / "scores.errors.csv").is_file()


def test_missing_model_error_names_the_zoo_and_how_to_add_one(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    done = helixserve(fresh, tmp_path, "models", "show", "my-binder")
    store = (Path(fresh["HOME"]) / ".helixserve" / "store").resolve().as_uri()
    assert done.returncode == 1
    assert done.stderr.replace("\n", "") == (
        f"Error: no model named 'my-binder' in the store {store} or the pretrained models; "
        f"models: {', '.join(ZOO)}. Add one with `helixserve train ...`, `helixserve models "
        "import MODEL.onnx ...` or `helixserve models pull NAME --from URI`."
    )


def test_hidden_when_switched_off(fresh: dict[str, str], tmp_path: Path) -> None:
    done = helixserve({**fresh, "HELIXSERVE_PRETRAINED": "false"}, tmp_path, "models", "list")
    assert done.returncode == 0
    assert "has no models yet" in done.stdout


def test_a_user_model_of_the_same_name_wins(tmp_path: Path) -> None:
    layered = open_layered(
        str(tmp_path / "store"), s3=None, cache_dir=tmp_path / "cache", pretrained=True
    )
    zoo = ModelStore.open(str(PRETRAINED_STORE)).uri
    assert layered.manifest("primer-binding").task == "binary"
    assert layered.origin("primer-binding") == zoo
    publish_gc(layered, name="primer-binding")  # written to the user's store, never the package's
    assert layered.versions("primer-binding") == [1, 2]  # numbered after the pretrained one
    assert layered.origin("primer-binding") == layered.uri  # the default is now the user's
    assert layered.manifest("primer-binding").metrics == {"accuracy": 0.9}
    assert layered.aliases("primer-binding") == {}  # the pretrained production alias is hidden
    assert layered.origin("primer-binding", 1) == zoo  # and the pretrained version still there
    assert layered.manifest("primer-binding@1").metrics["accuracy"] == 1.0
    assert layered.list_models() == ZOO
    assert not (PRETRAINED_STORE / "primer-binding" / "versions" / "2").exists()


def test_the_zoo_cannot_be_changed_through_the_user_store(tmp_path: Path) -> None:
    layered = open_layered(
        str(tmp_path / "store"), s3=None, cache_dir=tmp_path / "cache", pretrained=True
    )
    with pytest.raises(StorePermissionError) as info:
        layered.set_alias("yeast-utr", "staging", 1)
    assert str(info.value) == (
        "yeast-utr is a pretrained model shipped with helixserve and cannot be changed (alias "
        f"staging); copy it into your store first: helixserve models push yeast-utr --to "
        f"{layered.uri} (your copy then replaces it)."
    )
    copied = layered.copy_to(layered, "yeast-utr")  # the documented fix: now the user's
    assert (copied.version, layered.origin("yeast-utr")) == (3, layered.uri)  # after the int8 @2
    layered.set_alias("yeast-utr", "staging", 1)  # a pretrained version, by the user's alias
    assert layered.aliases("yeast-utr") == {"staging": 1}
    assert layered.resolve("yeast-utr@staging") == 1
    with pytest.raises(StorePermissionError) as info:
        layered.delete("yeast-utr", 1, force=True)
    assert str(info.value) == (
        "yeast-utr@1 is a pretrained model shipped with helixserve; it cannot be deleted (set "
        "HELIXSERVE_PRETRAINED=false to hide every pretrained model)."
    )


@pytest.fixture
def plain_serve(fresh: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``helixserve serve`` with no option and no setting, as the README says."""
    port = free_port()
    env = {**fresh, "HELIXSERVE_PORT": str(port), "HELIXSERVE_GRPC_PORT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "helixserve", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_plain_serve_is_ready_with_the_zoo(plain_serve: str) -> None:
    assert httpx.get(f"{plain_serve}/readyz", timeout=5).status_code == 200
    served = httpx.get(f"{plain_serve}/api/v1/models", timeout=5).json()["models"]
    assert sorted(m["name"] for m in served) == ZOO


def test_list_api_and_home_page_agree_on_each_headline(
    plain_serve: str, fresh: dict[str, str], tmp_path: Path
) -> None:
    listed = helixserve(fresh, tmp_path, "models", "list").stdout
    cli = {
        line.split()[0]: " ".join(line.split()[-3:-1])  # the headline, before "zoo"
        for line in listed.splitlines()
        if line.split()[:1] in ([n] for n in ZOO)
    }
    served = httpx.get(f"{plain_serve}/api/v1/models", timeout=5).json()["models"]
    api = {m["name"]: m["headline"]["text"] for m in served}
    home = httpx.get(f"{plain_serve}/", timeout=5).text
    page = dict(
        re.findall(
            r'<h2><a href="/models/([a-z0-9-]+)/predict">.*?<dd class="headline"[^>]*>([^<]+)<',
            home,
            re.S,
        )
    )
    assert cli == api == page
    assert len(api) == len(ZOO)
    meanings = {m["name"]: m["headline"]["meaning"] for m in served}
    for name, meaning in meanings.items():
        assert meaning in listed.replace("\n", " ") or meaning in " ".join(listed.split())
        assert meaning in html.unescape(home), name


def test_every_pretrained_model_passes_its_self_test(fresh: dict[str, str], tmp_path: Path) -> None:
    done = helixserve(fresh, tmp_path, "models", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", f"{name}@1:"] for name in ZOO]
    assert all(line.endswith("examples match (tolerance 0.0001)") for line in lines)
    assert all(int(line.split()[2]) >= 4 for line in lines)  # examples in each bundle


def two_layers(tmp_path: Path) -> tuple[ModelStore, ModelStore]:
    below = ModelStore.open(str(tmp_path / "below"), cache_dir=tmp_path / "cache")
    mine = ModelStore.open(str(tmp_path / "mine"), cache_dir=tmp_path / "cache", under=below)
    return below, mine


def test_your_newest_version_is_the_default_whatever_lies_below(tmp_path: Path) -> None:
    below, mine = two_layers(tmp_path)
    publish_gc(below, name="m")
    publish_gc(mine, name="m", bias=3.0)  # yours: numbered after the one below
    publish_gc(below, name="m")  # newer pretrained versions arrive (an upgrade): @2 below is
    publish_gc(below, name="m")  # hidden by yours, @3 is not
    assert mine.versions("m") == [1, 2, 3]
    assert mine.origin("m", 3) == below.uri
    assert mine.resolve("m") == 2  # still yours
    assert mine.origin("m") == mine.uri


def test_a_version_made_from_a_pretrained_one_does_not_become_the_default(
    tmp_path: Path,
) -> None:
    below, mine = two_layers(tmp_path)
    publish_gc(below, name="m")
    below.set_alias("m", "production", 1)
    manifest, files = mine.read_files("m@1")
    derived = manifest.model_copy(update={"lineage": Lineage(how="quantize", parent="m@1")})
    assert mine.publish(derived, files).version == 2
    assert mine.aliases("m") == {"production": 1}  # copied up before the candidate appeared
    assert (mine.resolve("m"), mine.resolve("m@production")) == (1, 1)
    mine.set_alias("m", "production", 2)  # promoting works as in any store
    assert mine.resolve("m") == 2


def test_copies_between_stores_see_only_those_stores(fresh: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    pulled = helixserve(fresh, tmp_path, "models", "pull", "primer-binding", "--from", str(empty))
    assert pulled.returncode == 1
    assert pulled.stderr.startswith(
        f"Error: no model named 'primer-binding' in the store {empty.resolve().as_uri()};"
    )
    pushed = helixserve(fresh, tmp_path, "models", "push", "yeast-utr", "--to", str(empty))
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip().endswith("as yeast-utr@1")  # numbered in that store alone
