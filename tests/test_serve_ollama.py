"""Ollama's embedding API on the server: bodies, vectors, truncation, model names and Ollama's error shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sentsim.serve.app import create_app
from sentsim.serve.limits import ServeSettings
from tests.serve_support import TEXTS, FakeEngine, unit, vector_for


@pytest.fixture
def client():
    with TestClient(create_app(ServeSettings(), FakeEngine())) as test_client:
        yield test_client


def ollama_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def test_embed_gives_unit_vectors_in_order_with_ollamas_fields(client):
    for model in ("fake-model", "fake-model:latest"):
        body = client.post("/api/embed", json={"model": model, "input": TEXTS, "keep_alive": "5m",
                                               "options": {"num_ctx": 512}}).json()
        np.testing.assert_allclose(body["embeddings"], unit(np.stack([vector_for(t) for t in TEXTS])), atol=1e-6)
        assert body["model"] == model and body["prompt_eval_count"] > 0 and body["total_duration"] > 0
    one = client.post("/api/embed", json={"model": "fake-model", "input": TEXTS[0], "dimensions": 4}).json()
    np.testing.assert_allclose(one["embeddings"], [unit(vector_for(TEXTS[0])[:4])], atol=1e-6)
    # No input, an empty text or an empty list: no embeddings, as Ollama answers a client preloading a model.
    for empty in ({"input": []}, {"input": ""}, {}):
        assert client.post("/api/embed", json={"model": "fake-model", **empty}).json()["embeddings"] == []


def test_older_embeddings_route_returns_the_raw_vector(client):
    body = client.post("/api/embeddings", json={"model": "fake-model", "prompt": TEXTS[1]}).json()
    np.testing.assert_allclose(body["embedding"], vector_for(TEXTS[1]), atol=1e-6)
    assert client.post("/api/embeddings", json={"model": "fake-model", "prompt": ""}).json() == {"embedding": []}
    assert "not served here" in ollama_error(client.post("/api/embeddings", json={"model": "nope", "prompt": ""}), 404)
    lone = json.dumps({"model": "fake-model", "prompt": "\udc00"})
    sent = client.post("/api/embeddings", content=lone, headers={"Content-Type": "application/json"})
    assert "surrogate" in ollama_error(sent, 422)


def test_embed_truncates_by_default_as_ollama_does():
    engine = FakeEngine(max_seq_length=4)
    long_text = "one two three four five six"
    with TestClient(create_app(ServeSettings(), engine)) as client:
        assert client.post("/api/embed", json={"model": "fake-model", "input": long_text}).status_code == 200
        message = ollama_error(client.post("/api/embed", json={"model": "fake-model", "input": long_text,
                                                               "truncate": False}), 413)
        assert "max_seq_length" in message


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": "other", "input": "a"}, 404, "not served here"),
    ({"input": "a"}, 422, "model"),
    ({"model": "fake-model", "input": ["a", ""]}, 422, "empty text"),
    ({"model": "fake-model", "input": "a\ud800"}, 422, "lone UTF-16 surrogate"),
    ({"model": "fake-model", "input": "a", "dimensions": True}, 422, "dimensions"),
    ({"model": "nope", "input": ""}, 404, "not served here"),
    ({"model": "fake-model", "input": [1, 2, 3]}, 422, "token-id"),
    ({"model": "fake-model", "input": "a", "dimensions": 99}, 422, "dimensions"),
])
def test_errors_come_in_ollamas_shape(client, body, status, words):
    # json.dumps escapes a lone surrogate as JSON does ("\\ud800"); httpx's json= cannot encode one at all
    sent = client.post("/api/embed", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert words in ollama_error(sent, status)


def test_tags_and_version_and_the_other_routes_keep_the_openai_error_shape(client):
    models = client.get("/api/tags").json()["models"]
    # Ollama lists name:tag; clients that append ":latest" and match exactly find the model
    assert [entry["name"] for entry in models] == ["fake-model:latest"] and models[0]["model"] == "fake-model:latest"
    assert client.get("/api/version").json()["version"]
    error = client.post("/v1/embeddings", json={"input": ""}).json()["error"]
    assert isinstance(error, dict) and error["code"] == "invalid_request"
    with TestClient(create_app(ServeSettings(api_key="k"), FakeEngine())) as guarded:
        assert "API key" in ollama_error(guarded.post("/api/embed", json={"model": "fake-model", "input": "a"}), 401)
        ok = guarded.post("/api/embed", json={"model": "fake-model", "input": "a"},
                          headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200



def test_root_answers_ollamas_liveness_probes_and_post_stays_teis_embed(client):
    """Ollama's CLI heartbeat is ``HEAD /`` and many clients check ``GET /`` before anything else."""
    answer = client.get("/")
    assert answer.status_code == 200 and answer.text == "sentsim is running"
    assert answer.headers["content-type"].startswith("text/plain")
    for path in ("/", "/api/tags", "/api/version"):
        head = client.head(path)
        assert head.status_code == 200 and head.content == b"", path
    embedded = client.post("/", json={"inputs": "a"})
    assert embedded.status_code == 200 and len(embedded.json()) == 1
