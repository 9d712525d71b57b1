"""vLLM's /score and the /rerank family (vLLM, Jina, Cohere, TEI): cosines of the right pairs, the
pairing rules, ranking order, top_n, the answer shapes their clients parse, and clear errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sentsim.serve.app import create_app
from sentsim.serve.limits import ServeSettings
from tests.serve_support import TEXTS, FakeEngine, assert_error, unit, vector_for, wait_until


@pytest.fixture
def client():
    with TestClient(create_app(ServeSettings(max_client_batch_size=8), FakeEngine())) as test_client:
        yield test_client


def cosine(first: str, second: str) -> float:
    return float(np.dot(unit(vector_for(first)), unit(vector_for(second))))


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_score_pairs_one_to_one_one_to_many_and_zipped(client, path):
    one = client.post(path, json={"model": "fake-model", "text_1": TEXTS[0], "text_2": TEXTS[1]}).json()
    assert one["object"] == "list" and one["model"] == "fake-model" and one["id"].startswith("score-")
    assert one["data"][0]["object"] == "score" and one["data"][0]["index"] == 0
    assert one["data"][0]["score"] == pytest.approx(cosine(TEXTS[0], TEXTS[1]), abs=1e-6)
    assert one["usage"]["prompt_tokens"] == one["usage"]["total_tokens"] > 0

    broadcast = client.post(path, json={"text_1": [TEXTS[0]], "text_2": TEXTS}).json()["data"]
    assert [item["index"] for item in broadcast] == [0, 1, 2]
    np.testing.assert_allclose([item["score"] for item in broadcast], [cosine(TEXTS[0], t) for t in TEXTS], atol=1e-6)
    assert broadcast[0]["score"] == pytest.approx(1.0, abs=1e-6)

    zipped = client.post(path, json={"text_1": TEXTS, "text_2": TEXTS[::-1]}).json()["data"]
    np.testing.assert_allclose([item["score"] for item in zipped],
                               [cosine(a, b) for a, b in zip(TEXTS, TEXTS[::-1], strict=True)], atol=1e-6)


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"text_1": TEXTS[:2], "text_2": TEXTS}, 422, "mismatched_inputs"),
    ({"text_1": [], "text_2": TEXTS}, 422, "no_inputs"),
    ({"text_1": "a", "text_2": []}, 422, "no_inputs"),
    ({"text_1": [1, 2], "text_2": "a"}, 422, "invalid_request"),
    ({"text_1": "a"}, 422, "invalid_request"),
    ({"text_1": "", "text_2": "b"}, 422, "invalid_request"),
    ({"text_1": "a", "text_2": ["b", ""]}, 422, "invalid_request"),
    ({"model": "other", "text_1": "a", "text_2": "b"}, 404, "model_not_found"),
    ({"text_1": "a", "text_2": ["b"] * 8}, 413, "too_many_inputs"),  # 16 texts counted against a limit of 8
    ({"text_1": "a", "text_2": "b", "truncate_prompt_tokens": 3}, 422, "unsupported_truncation"),
])
def test_score_refuses_what_it_cannot_answer(client, body, status, code):
    assert_error(client.post("/score", json=body), status, code)


def test_score_truncates_only_when_asked():
    long_text = "one two three four five six seven"
    with TestClient(create_app(ServeSettings(), FakeEngine(max_seq_length=4))) as client:
        assert_error(client.post("/score", json={"text_1": long_text, "text_2": "a"}), 413, "input_too_long")
        for tokens in (-1, 4, 100):
            answer = client.post("/score", json={"text_1": long_text, "text_2": "a", "truncate_prompt_tokens": tokens})
            assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank"])
def test_rerank_orders_documents_by_cosine_with_the_query(client, path):
    query, documents = TEXTS[0], [TEXTS[2], {"text": TEXTS[1]}, TEXTS[0]]
    texts = [TEXTS[2], TEXTS[1], TEXTS[0]]
    body = client.post(path, json={"model": "fake-model", "query": query, "documents": documents}).json()
    assert body["model"] == "fake-model" and body["id"].startswith("rerank-") and body["usage"]["total_tokens"] > 0
    expected = sorted(range(3), key=lambda index: -cosine(query, texts[index]))
    assert [result["index"] for result in body["results"]] == expected
    assert body["results"][0]["index"] == 2 and body["results"][0]["relevance_score"] == pytest.approx(1.0, abs=1e-6)
    assert [result["document"]["text"] for result in body["results"]] == [texts[index] for index in expected]

    best = client.post(path, json={"query": query, "documents": texts, "top_n": 1, "return_documents": False}).json()
    assert [set(result) for result in best["results"]] == [{"index", "relevance_score"}]
    assert best["results"][0]["index"] == 2
    assert client.post(path, json={"query": query, "documents": []}).json()["results"] == []


def test_rerank_speaks_teis_texts_form(client):
    texts = [TEXTS[1], TEXTS[0]]
    ranks = client.post("/rerank", json={"query": TEXTS[0], "texts": texts, "raw_scores": True}).json()
    assert isinstance(ranks, list) and [item["index"] for item in ranks] == [1, 0]
    assert set(ranks[0]) == {"index", "score"} and ranks[0]["score"] == pytest.approx(1.0, abs=1e-6)
    with_text = client.post("/rerank", json={"query": TEXTS[0], "texts": texts, "return_text": True}).json()
    assert [item["text"] for item in with_text] == [TEXTS[0], TEXTS[1]]


@pytest.mark.parametrize(("body", "status"), [
    ({"query": "a"}, 422),
    ({"query": "a", "documents": ["b"], "texts": ["b"]}, 422),
    ({"query": "a", "documents": ["b"], "top_n": -1}, 422),
    ({"query": [1, 2], "texts": ["b"]}, 422),
    ({"query": "", "documents": ["b"]}, 422),
    ({"query": "a", "documents": [{"text": ""}]}, 422),
    ({"query": "a", "texts": [""]}, 422),
    ({"query": "a", "documents": ["b"] * 8}, 413),
    ({"model": "other", "query": "a", "documents": ["b"]}, 404),
])
def test_rerank_refuses_what_it_cannot_answer(client, body, status):
    assert_error(client.post("/rerank", json=body), status)


def test_score_and_rerank_wait_for_the_model_even_with_nothing_to_rank():
    release = threading.Event()

    def loader() -> FakeEngine:
        assert release.wait(10)
        return FakeEngine()

    with TestClient(create_app(ServeSettings(), loader=loader, model_name="slow")) as client:
        assert_error(client.post("/score", json={"text_1": "a", "text_2": "b"}), 503, "model_loading")
        assert_error(client.post("/rerank", json={"query": "a", "documents": []}), 503, "model_loading")
        release.set()
        wait_until(lambda: client.get("/ready").status_code == 200)
        assert client.post("/rerank", json={"query": "a", "documents": []}).json()["results"] == []
