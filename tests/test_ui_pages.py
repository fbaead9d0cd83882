"""The catalogue, model and compare pages of a real server, read with httpx: /compare compares
exactly the versions it is asked for, the headline agrees between the pages and the API, and the
model page shows the lineage chain through the store."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from helixserve.inputs.sequence import SequenceSchema
from helixserve.serving.lineage import MAX_STEPS, lineage_chain
from helixserve.store import Headline, Lineage, Manifest, ModelStore, OutputSchema, make_manifest
from tests.support.onnx_models import gc_binary_model
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
GENES = Headline(
    metric="isolate_accuracy",
    meaning="isolates called right by their genes (30 test isolates)",
    ood_metric="external_accuracy",
    ood_meaning="isolates from a study the model never saw",
)


def publish(store: ModelStore, name: str, **fields: Any) -> Manifest:
    """A G+C model (exactly 50 nt) published as the next version of ``name``."""
    files = {"model.onnx": gc_binary_model(50), "card.md": f"# {name}\n".encode()}
    fields.setdefault("metrics", {"accuracy": 0.9})
    manifest = make_manifest(
        files,
        name=name,
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
        **fields,
    )
    return store.publish(manifest, files)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("pages")
    shutil.copytree(ZOO / "tumor-wisconsin", tmp / "store" / "tumor-wisconsin")
    store = ModelStore.open(str(tmp / "store"), cache_dir=tmp / "pub")
    publish(store, "gc", lineage=Lineage(how="trained"))
    publish(
        store, "gc", metrics={"accuracy": 0.92}, lineage=Lineage(how="init-from", parent="gc@1")
    )
    publish(
        store,
        "gc",
        metrics={"accuracy": 0.918},
        lineage=Lineage(
            how="quantize", parent="gc@2", details={"delta_accuracy": -0.0021, "int8": "dynamic"}
        ),
    )
    publish(
        store,
        "genes",
        headline=GENES,
        metrics={
            "accuracy": 0.312,
            "isolate_accuracy": 0.8667,
            "external_accuracy": 0.75,
            "isolates": 30.0,
        },
    )
    publish(store, "orphan", metrics={}, lineage=Lineage(how="quantize", parent="ghost@4"))
    with running(tmp / "store", tmp, access_log=False) as s:
        yield s


def text_of(html: str, pattern: str) -> list[str]:
    """The text (tags removed, whitespace collapsed) of each match of ``pattern``'s group 1."""
    return [
        unescape(" ".join(re.sub(r"<[^>]+>", " ", m).split()))
        for m in re.findall(pattern, html, re.S)
    ]


def compared(html: str) -> list[str]:
    head = re.search(r'<table[^>]*id="compare-table".*?<thead>(.*?)</thead>', html, re.S)
    return text_of(head.group(1), r"<th[^>]*>(.*?)</th>")[1:] if head else []


# --- /compare --------------------------------------------------------------------------------


def test_compare_shows_exactly_the_versions_asked_for(server: Running) -> None:
    reply = httpx.get(server.url + "/compare", params=[("m", "gc@1"), ("m", "gc@3")])
    assert reply.status_code == 200
    assert compared(reply.text) == ["gc@1", "gc@3"]  # not gc@2, not genes, not tumor-wisconsin
    assert 'id="compare-problems"' not in reply.text and 'id="compare-default"' not in reply.text
    rows = text_of(reply.text, r"<tr><th scope=\"row\">accuracy</th>(.*?)</tr>")
    assert rows == ["0.9000 0.9180"]


def test_compare_reads_aliases_and_counts_a_version_once(server: Running) -> None:
    reply = httpx.get(server.url + "/compare?m=genes&m=gc&m=gc@3&m=tumor-wisconsin@production")
    assert compared(reply.text) == ["genes@1", "gc@3", "tumor-wisconsin@1"]
    isolates = text_of(reply.text, r'<tr><th scope="row">isolates</th>(.*?)</tr>')
    assert isolates == ["30 – –"]  # a count is a whole number; the others lack it


def test_compare_names_what_it_cannot_find(server: Running) -> None:
    reply = httpx.get(server.url + "/compare?m=gc@2&m=gc@9&m=nope&m=gc@staging&m=..%2Fx")
    assert reply.status_code == 200
    assert compared(reply.text) == ["gc@2"]
    assert text_of(
        reply.text, r'<ul class="error" role="alert" id="compare-problems">(.*?)</ul>'
    ) == [
        "m=gc@9: model 'gc' has no version or alias '9'; served: 1, 2, 3. "
        "m=nope: no model named 'nope' is served; served models: gc, genes, orphan, "
        "tumor-wisconsin. "
        "m=gc@staging: model 'gc' has no version or alias 'staging'; served: 1, 2, 3. "
        "m=../x: model name '../x' is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, with no '..', slashes or spaces (e.g. 'primer-binding')."
    ]
    nothing = httpx.get(server.url + "/compare?m=nope")
    assert nothing.status_code == 404
    assert 'id="compare-table"' not in nothing.text


def test_compare_without_a_choice_says_it_shows_every_model(server: Running) -> None:
    reply = httpx.get(server.url + "/compare")
    assert compared(reply.text) == ["gc@3", "genes@1", "orphan@1", "tumor-wisconsin@1"]
    assert text_of(reply.text, r'<p class="lead" id="compare-default">(.*?)</p>') == [
        "No models were chosen, so this compares the default version of every served model. "
        "Pick versions below to compare only those."
    ]


def test_model_page_links_to_a_comparison_of_its_versions(server: Running) -> None:
    page = httpx.get(server.url + "/models/gc").text
    link = re.search(r'<a id="compare-versions" href="([^"]+)">Compare its versions</a>', page)
    assert link is not None and unescape(link.group(1)) == "/compare?m=gc@1&m=gc@2&m=gc@3"
    assert compared(httpx.get(server.url + unescape(link.group(1))).text) == [
        "gc@1",
        "gc@2",
        "gc@3",
    ]
    assert 'id="compare-versions"' not in httpx.get(server.url + "/models/genes").text


# --- headline ----------------------------------------------------------------------------------


def test_headline_agrees_on_home_page_model_page_and_api(server: Running) -> None:
    home = httpx.get(server.url + "/").text
    card = home[home.index('href="/models/genes/predict">genes</a>') :]
    assert text_of(card, r'<dd class="headline" title="([^"]*)">')[0] == GENES.meaning
    assert text_of(card, r'<dd class="headline"[^>]*>(.*?)</dd>')[0] == (
        "isolate_accuracy 0.867 " + GENES.meaning
    )
    assert text_of(card, r'<dd class="headline-ood"[^>]*>(.*?)</dd>')[0] == (
        "external_accuracy 0.750 isolates from a study the model never saw"
    )
    page = httpx.get(server.url + "/models/genes").text
    assert text_of(page, r'<p id="headline">(.*?)</p>') == [
        "isolate_accuracy 0.867 — " + GENES.meaning
    ]
    assert text_of(page, r'<p id="headline-ood">(.*?)</p>') == [
        "external_accuracy 0.750 — isolates from a study the model never saw"
    ]
    listed = httpx.get(server.url + "/api/v1/models").json()["models"]
    detail = httpx.get(server.url + "/api/v1/models/genes").json()
    expected = {
        "metric": "isolate_accuracy",
        "value": 0.8667,
        "meaning": GENES.meaning,
        "text": "isolate_accuracy 0.867",
        "ood_metric": "external_accuracy",
        "ood_value": 0.75,
        "ood_meaning": GENES.ood_meaning,
        "ood_text": "external_accuracy 0.750",
    }
    assert next(m for m in listed if m["name"] == "genes")["headline"] == expected
    assert detail["headline"] == expected


def test_without_a_recorded_headline_every_edge_shows_accuracy(server: Running) -> None:
    page = httpx.get(server.url + "/models/gc?version=2").text
    assert text_of(page, r'<p id="headline">(.*?)</p>') == [
        "accuracy 0.920 — accuracy on the test set"
    ]
    assert 'id="headline-ood"' not in page
    bare = httpx.get(server.url + "/models/orphan").text
    assert text_of(bare, r'<p id="headline">(.*?)</p>') == [
        "none recorded — no test-set figure was recorded"
    ]
    detail = httpx.get(server.url + "/api/v1/models/gc", params={"version": "2"}).json()
    assert (detail["version"], detail["default_version"]) == (2, 3)
    assert detail["metrics"] == {"accuracy": 0.92}  # the version asked for, not the default
    assert detail["headline"]["text"] == "accuracy 0.920"


# --- lineage -----------------------------------------------------------------------------------


def test_model_page_shows_the_lineage_chain_with_links(server: Running) -> None:
    page = httpx.get(server.url + "/models/gc?version=3").text
    assert text_of(page, r'<ol class="lineage" id="lineage">(.*?)</ol>') == [
        "gc@3 : quantize from gc@2; delta_accuracy -0.0021, int8 dynamic "
        "gc@2 : init-from from gc@1 gc@1 : trained"
    ]
    chain = re.search(r'<ol class="lineage" id="lineage">(.*?)</ol>', page, re.S)
    assert chain is not None
    assert re.findall(r'href="([^"]+)"', chain.group(1)) == [
        "/models/gc?version=3",
        "/models/gc?version=2",
        "/models/gc?version=1",
    ]
    assert 'id="lineage-stop"' not in page


def test_lineage_stops_at_a_parent_missing_from_the_store(server: Running) -> None:
    page = httpx.get(server.url + "/models/orphan").text
    assert text_of(page, r'<ol class="lineage" id="lineage">(.*?)</ol>') == [
        "orphan@1 : quantize from ghost@4"
    ]
    assert text_of(page, r'<p class="muted" id="lineage-stop">(.*?)</p>') == [
        "The chain stops: ghost@4 is not in the store (deleted, or made elsewhere)."
    ]


def _manifest(name: str, version: int, parent: str | None) -> Manifest:
    files = {"model.onnx": b"x", "card.md": b"# m\n"}
    lineage = Lineage(how="refit" if parent else "trained", parent=parent)
    return make_manifest(
        files,
        name=name,
        version=version,
        task="regression",
        input=SequenceSchema(length=50),
        lineage=lineage,
    )


def test_lineage_chain_stops_after_twenty_steps_and_at_a_loop() -> None:
    long = {f"m@{v}": _manifest("m", v, f"m@{v - 1}" if v > 1 else None) for v in range(1, 40)}
    chain = lineage_chain(long["m@39"], long.get)
    assert [link.ref for link in chain.links] == [
        f"m@{v}" for v in range(39, 39 - MAX_STEPS - 1, -1)
    ]
    assert chain.stop == "the chain is longer than 20 steps; older versions not shown."
    loop = {"a@1": _manifest("a", 1, "a@2"), "a@2": _manifest("a", 2, "a@1")}
    looped = lineage_chain(loop["a@1"], loop.get)
    assert [link.ref for link in looped.links] == ["a@1", "a@2"]
    assert looped.stop == "a@1 is already in the chain (the lineage loops)."
    assert lineage_chain(long["m@2"], long.get).stop is None  # m@1 is the root
    short = lineage_chain(long["m@3"], lambda ref: long.get(ref) if ref != "m@1" else None)
    assert [link.ref for link in short.links] == ["m@3", "m@2"]
    assert short.stop == "m@1 is not in the store (deleted, or made elsewhere)."
