"""The HTTP service in-process (FastAPI TestClient): results and batching (limits and errors: test_serve_limits.py)."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from sentsim.inference.calibration import IsotonicCalibration
from sentsim.inference.encode import encode
from sentsim.serve.app import create_app
from sentsim.serve.engine import Engine, TorchEngine
from sentsim.serve.limits import ServeSettings

from .serve_support import TEXTS, FakeEngine, assert_error, unit, vector_for, wait_until


# -- results -------------------------------------------------------------------------------------
def test_fake_engine_meets_the_protocol(fake, tiny_engine):
    assert isinstance(fake, Engine) and isinstance(tiny_engine, Engine)


def test_openai_embeddings_match_offline_encode(tiny_model, tiny_engine):
    with TestClient(create_app(ServeSettings(), tiny_engine)) as client:
        response = client.post("/v1/embeddings", json={"input": TEXTS, "model": "tiny"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == "tiny"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(item["object"] == "embedding" for item in body["data"])
    served = np.array([item["embedding"] for item in body["data"]])
    offline = encode(tiny_model, TEXTS, normalize=True)
    np.testing.assert_allclose(served, offline, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    tokens = sum(len(ids) for ids in tiny_model.token_ids(TEXTS))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_single_string_input_and_base64(client):
    floats = client.post("/v1/embeddings", json={"input": TEXTS[0]}).json()["data"]
    packed = client.post("/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "base64"}).json()["data"]
    assert len(floats) == len(packed) == 1
    decoded = np.frombuffer(base64.b64decode(packed[0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, floats[0]["embedding"], rtol=1e-6)
    np.testing.assert_allclose(decoded, unit(vector_for(TEXTS[0])), rtol=1e-5)


def test_dimensions_truncate_then_renormalise(client):
    body = client.post("/v1/embeddings", json={"input": TEXTS, "dimensions": 3}).json()
    served = np.array([item["embedding"] for item in body["data"]])
    expected = unit(np.stack([vector_for(text)[:3] for text in TEXTS]))
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert_error(client.post("/v1/embeddings", json={"input": "x", "dimensions": 9}), 422, "invalid_dimensions")
    assert_error(client.post("/v1/embeddings", json={"input": "x", "dimensions": 0}), 422)


def test_models_route_and_model_names(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert body["data"][0]["id"] == "fake-model" and body["data"][0]["embedding_dimension"] == 8
    assert body["data"][0]["calibrated"] is False
    assert client.post("/v1/embeddings", json={"input": "x", "model": "fake-model"}).status_code == 200
    assert_error(client.post("/v1/embeddings", json={"input": "x", "model": "gpt-x"}), 404, "model_not_found")


def test_tei_embed_normalize_flag(client):
    raw = np.array(client.post("/embed", json={"inputs": TEXTS, "normalize": False}).json())
    normalised = np.array(client.post("/embed", json={"inputs": TEXTS}).json())
    expected = np.stack([vector_for(text) for text in TEXTS])
    np.testing.assert_allclose(raw, expected, rtol=1e-6)
    np.testing.assert_allclose(normalised, unit(expected), rtol=1e-5)
    assert len(client.post("/embed", json={"inputs": "one"}).json()) == 1


def test_similarity_pairs_with_and_without_calibration(tiny_model):
    pairs = [{"sentence1": TEXTS[0], "sentence2": TEXTS[1]}, {"sentence1": TEXTS[0], "sentence2": TEXTS[0]}]
    offline = encode(tiny_model, TEXTS[:2], normalize=True)
    with TestClient(create_app(ServeSettings(), TorchEngine(tiny_model, name="tiny"))) as client:
        plain = client.post("/similarity", json={"pairs": pairs}).json()
    assert [item["score"] for item in plain["data"]] == [None, None]
    assert plain["data"][0]["cosine"] == pytest.approx(float(offline[0] @ offline[1]), abs=2e-3)
    assert plain["data"][1]["cosine"] == pytest.approx(1.0, abs=1e-6)
    tiny_model.calibration = IsotonicCalibration(np.array([-1.0, 1.0]), np.array([0.0, 5.0]), n_pairs=2)
    with TestClient(create_app(ServeSettings(), TorchEngine(tiny_model, name="tiny"))) as client:
        calibrated = client.post("/similarity", json={"pairs": pairs}).json()
        assert client.get("/v1/models").json()["data"][0]["calibrated"] is True
    for item in calibrated["data"]:
        assert item["score"] == pytest.approx(2.5 * (item["cosine"] + 1.0), abs=1e-6)
    assert calibrated["data"][1]["score"] == pytest.approx(5.0, abs=1e-5)
    assert calibrated["usage"]["prompt_tokens"] == sum(len(ids) for ids in tiny_model.token_ids(TEXTS[:2]))


def test_similarity_tei_form_returns_tei_list(client):
    response = client.post("/similarity", json={"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS}})
    cosines = response.json()
    source = unit(vector_for(TEXTS[0]))
    assert cosines == pytest.approx([float(source @ unit(vector_for(text))) for text in TEXTS], abs=1e-6)
    assert cosines[0] == pytest.approx(1.0, abs=1e-6)


def test_similarity_needs_exactly_one_form(client):
    both = {"pairs": [{"sentence1": "a", "sentence2": "b"}], "inputs": {"source_sentence": "a", "sentences": ["b"]}}
    assert_error(client.post("/similarity", json=both), 422)
    assert_error(client.post("/similarity", json={}), 422)
    assert_error(client.post("/similarity", json={"pairs": []}), 422)


def test_health_ready_docs_and_metrics(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "model": "fake-model"}
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/embeddings", "/v1/models", "/embed", "/similarity", "/health", "/ready", "/metrics"} <= set(
        schema["paths"])
    client.post("/v1/embeddings", json={"input": TEXTS})
    client.post("/v1/embeddings", json={"input": ""})
    text = client.get("/metrics").text
    assert 'sentsim_requests_total{route="/v1/embeddings",status="200"} 1.0' in text
    assert 'sentsim_requests_total{route="/v1/embeddings",status="422"} 1.0' in text
    assert "sentsim_request_seconds_bucket" in text and "sentsim_batch_sentences_count 1.0" in text
    assert "sentsim_tokens_total" in text and "sentsim_queue_depth 0.0" in text


# -- batching ------------------------------------------------------------------------------------
def test_concurrent_requests_each_get_their_own_vectors(fake):
    requests = [[f"request {number} sentence {index}" for index in range(1 + number % 5)] for number in range(48)]
    with TestClient(create_app(ServeSettings(), fake)) as client, ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(lambda texts: client.post("/embed", json={"inputs": texts, "normalize": False}),
                               requests))
    for texts, response in zip(requests, bodies, strict=True):
        assert response.status_code == 200
        np.testing.assert_allclose(np.array(response.json()), np.stack([vector_for(t) for t in texts]), rtol=1e-6)
    assert sum(len(batch) for batch in fake.batches) == sum(len(texts) for texts in requests)
    assert max(len(batch) for batch in fake.batches) > 1  # requests were merged


def test_big_request_is_split_and_cannot_starve_a_small_one():
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    settings = ServeSettings(max_batch_tokens=40, max_client_batch_size=1000)
    big = [f"big {index}" for index in range(200)]  # 4 tokens each: 10 per batch, 20 batches
    with TestClient(create_app(settings, engine)) as client, ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/embed", json={"inputs": ["warm up"]})
        assert engine.started.wait(5)  # the worker is busy; the next two requests queue up behind it
        big_future = pool.submit(client.post, "/embed", json={"inputs": big, "normalize": False})
        wait_until(lambda: client.app.state.service.queue.in_flight == 2)
        small_future = pool.submit(client.post, "/embed", json={"inputs": ["small one"], "normalize": False})
        wait_until(lambda: client.app.state.service.queue.in_flight == 3)
        gate.set()
        assert first.result().status_code == small_future.result().status_code == 200
        big_vectors = np.array(big_future.result().json())
    np.testing.assert_allclose(big_vectors, np.stack([vector_for(text) for text in big]), rtol=1e-6)
    batches = engine.batches[1:]
    assert all(sum(len(text.split()) + 2 for text in batch) <= 40 for batch in batches)
    small_batch = next(index for index, batch in enumerate(batches) if "small one" in batch)
    assert small_batch == 0 and len(batches) >= 20


class ConcurrencyProbe(FakeEngine):
    """A fake whose forwards take a while and count how many run at the same moment."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.lock = threading.Lock()
        self.active = self.most_active = 0

    def embed_tokens(self, ids):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(0.02)
            return super().embed_tokens(ids)
        finally:
            with self.lock:
                self.active -= 1


def test_parallel_runners_run_forwards_at_once_and_keep_every_vector_in_place():
    engine = ConcurrencyProbe(parallel_runs=3)
    engine.batch_size = 4  # the queue cuts its batches into forwards of at most 4 sentences
    requests = [[f"request {number} sentence {index}" for index in range(1 + number % 7)] for number in range(40)]
    with TestClient(create_app(ServeSettings(), engine)) as client, ThreadPoolExecutor(16) as pool:
        assert client.app.state.service.queue.runners == 3
        bodies = list(pool.map(lambda texts: client.post("/embed", json={"inputs": texts, "normalize": False}),
                               requests))
    for texts, response in zip(requests, bodies, strict=True):
        assert response.status_code == 200
        np.testing.assert_allclose(np.array(response.json()), np.stack([vector_for(t) for t in texts]), rtol=1e-6)
    assert sorted(text for batch in engine.batches for text in batch) == sorted(t for r in requests for t in r)
    assert max(len(batch) for batch in engine.batches) <= 4
    assert engine.most_active > 1  # forwards overlapped


def test_one_runner_never_overlaps_forwards():
    engine = ConcurrencyProbe()
    requests = [[f"request {number}"] * 3 for number in range(20)]
    with TestClient(create_app(ServeSettings(), engine)) as client, ThreadPoolExecutor(8) as pool:
        assert all(r.status_code == 200 for r in pool.map(lambda t: client.post("/embed", json={"inputs": t}),
                                                             requests))
    assert engine.most_active == 1
