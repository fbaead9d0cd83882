"""Operations: API keys, overload (503), reload under load, store outages, polling."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from helixserve.serving.auth import hash_key
from helixserve.store import ModelStore
from tests.conftest import s3_options
from tests.support.s3server import seaweedfs
from tests.support.server import publish_gc, running

GC = "GC" * 25
PREDICT_KEY, ADMIN_KEY = "hs_predict_key_for_tests", "hs_admin_key_for_tests"


def local_store(tmp_path: Path) -> ModelStore:
    return ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "pub-cache")


def test_api_keys_scopes(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    publish_gc(store)
    keys = [f"predict:{hash_key(PREDICT_KEY)}", f"admin:{hash_key(ADMIN_KEY)}"]
    with running(store.uri, tmp_path, api_keys=keys) as server:
        url = server.url + "/api/v1/models/gc/predict"
        missing = httpx.post(url, json={"inputs": [GC]})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="helixserve"'
        assert missing.json()["detail"] == (
            "this route needs an API key with the 'predict' scope: send it as "
            "'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        )
        wrong = httpx.post(url, json={"inputs": [GC]}, headers={"x-api-key": "nope"})
        assert wrong.json()["detail"] == "the API key is not valid; check it, or ask for a new one."
        ok = httpx.post(
            url, json={"inputs": [GC]}, headers={"authorization": f"Bearer {PREDICT_KEY}"}
        )
        assert ok.status_code == 200
        reload = server.url + "/api/v1/admin/reload"
        forbidden = httpx.post(reload, headers={"x-api-key": PREDICT_KEY})
        assert forbidden.status_code == 403
        assert forbidden.json()["detail"] == (
            "this route needs an API key with the 'admin' scope; this key has only 'predict'."
        )
        assert httpx.post(reload, headers={"x-api-key": ADMIN_KEY}).json()["models"] == {"gc": [1]}
        assert httpx.post(url, json={"inputs": [GC]}, headers={"x-api-key": ADMIN_KEY}).is_success
        _grpc_needs_key(server.grpc)


def _grpc_needs_key(address: str) -> None:
    tensor = tgrpc.InferInput("sequence", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([GC.encode()], dtype=object))
    client = tgrpc.InferenceServerClient(address)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("gc", [tensor])
    assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
    result = client.infer("gc", [tensor], headers={"authorization": f"Bearer {PREDICT_KEY}"})
    assert result.as_numpy("label").tolist() == [b"1"]


def test_overload_answers_503_with_retry_after(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    publish_gc(store)
    policy = {"gc": {"max_wait_ms": 300, "max_queue_items": 4, "max_batch_size": 64}}
    with running(store.uri, tmp_path, batch_policies=policy) as server:
        url = server.url + "/api/v1/models/gc/predict"

        def call(_: int) -> httpx.Response:
            return httpx.post(url, json={"inputs": [GC]}, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            replies = list(pool.map(call, range(24)))
        codes = sorted({r.status_code for r in replies})
        assert codes == [200, 503]
        busy = next(r for r in replies if r.status_code == 503)
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["detail"] == (
            "gc@1 is overloaded: 4 items are already waiting (limit 4). Retry in a moment."
        )
        assert sum(r.status_code == 200 for r in replies) >= 4
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert call(0).status_code == 200


def test_reload_moves_alias_under_load_without_failures(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    publish_gc(store, bias=12.5)
    store.set_alias("gc", "production", 1)
    with running(store.uri, tmp_path) as server:
        url = server.url + "/api/v1/models/gc/predict"
        seen: list[tuple[int, int | None]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    reply = client.post(url, json={"inputs": [GC]})
                    seen.append((reply.status_code, reply.json().get("version")))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        publish_gc(store, bias=100.0)
        store.set_alias("gc", "production", 2)
        assert httpx.post(server.url + "/api/v1/admin/reload").json()["models"] == {"gc": [1, 2]}
        time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join()
    statuses = {status for status, _ in seen}
    versions = [version for _, version in seen]
    assert statuses == {200}, f"failed requests during reload: {statuses}"
    assert 1 in versions and versions[-1] == 2
    assert len(seen) > 50


def test_polling_picks_up_a_moved_alias(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    publish_gc(store)
    with running(store.uri, tmp_path, reload_interval_s=0.2) as server:
        publish_gc(store, bias=100.0)
        store.set_alias("gc", "production", 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            detail = httpx.get(server.url + "/api/v1/models/gc").json()
            if detail["default_version"] == 2:
                break
            time.sleep(0.1)
        assert detail["default_version"] == 2
        reply = httpx.post(server.url + "/api/v1/models/gc/predict", json={"inputs": [GC]})
        assert reply.json()["predictions"][0]["label"] == "0"  # bias 100: never positive


def test_store_outage_keeps_serving_readyz_says_why_and_recovers(tmp_path: Path) -> None:
    with seaweedfs(tmp_path / "weed") as s3:
        import s3fs

        s3fs.S3FileSystem(
            key="RW",
            secret="RWS",
            skip_instance_cache=True,
            client_kwargs={"endpoint_url": s3.endpoint, "region_name": "us-east-1"},
        ).mkdir("models")
        options = s3_options(s3)
        store = ModelStore.open("s3://models/outage", s3=options, cache_dir=tmp_path / "c")
        publish_gc(store)
        settings = {
            "s3_endpoint_url": options.endpoint_url,
            "s3_region": "us-east-1",
            "s3_access_key_id": options.key,
            "s3_secret_access_key": options.secret,
        }
        with running("s3://models/outage", tmp_path, **settings) as server:
            assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
            s3.stop()
            reload = httpx.post(server.url + "/api/v1/admin/reload", timeout=60).json()
            assert reload["store"].startswith("the store at s3://models/outage could not list ")
            ready = httpx.get(server.url + "/readyz")
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            assert "could not list models" in ready.json()["store"]
            reply = httpx.post(server.url + "/api/v1/models/gc/predict", json={"inputs": [GC]})
            assert reply.json()["predictions"][0]["label"] == "1"
            s3.start_again()  # the outage ends: the next reload clears the store error
            back = httpx.post(server.url + "/api/v1/admin/reload", timeout=60).json()
            assert (back["store"], back["models"]) == ("ok", {"gc": [1]})
            assert httpx.get(server.url + "/readyz").json()["status"] == "ready"


def test_unreachable_store_at_start_is_not_ready(tmp_path: Path) -> None:
    settings = {
        "s3_endpoint_url": "http://127.0.0.1:9",
        "s3_region": "us-east-1",
        "s3_access_key_id": "a",
        "s3_secret_access_key": "b",
    }
    with running("s3://models/none", tmp_path, **settings) as server:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["reason"].startswith(
            "the store at s3://models/none could not list models (Could not connect to the "
            'endpoint URL: "http://127.0.0.1:9/'
        )
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_empty_listing_keeps_loaded_models(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    publish_gc(store)
    with running(store.uri, tmp_path) as server:
        (tmp_path / "store").rename(tmp_path / "moved")
        body = httpx.post(server.url + "/api/v1/admin/reload").json()
        assert body["models"] == {"gc": [1]}
        assert body["store"].startswith(
            f"the store {store.uri} lists no models now; keeping the 1 loaded"
        )


def test_cors_when_configured(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    publish_gc(store)
    with running(store.uri, tmp_path, cors_origins=["https://lab.example"]) as server:
        origin = {"origin": "https://lab.example"}
        preflight = httpx.options(
            server.url + "/api/v1/models/gc/predict",
            headers={
                **origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://lab.example"
        reply = httpx.post(
            server.url + "/api/v1/models/gc/predict", json={"inputs": [GC]}, headers=origin
        )
        assert reply.headers["access-control-allow-origin"] == "https://lab.example"
        other = httpx.post(
            server.url + "/api/v1/models/gc/predict",
            json={"inputs": [GC]},
            headers={"origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in other.headers
