"""What one client sends must not hurt another, and clients written for other servers find what they expect.

A lone surrogate is refused with the request on every route, and a text the tokenizer refuses fails
only its own request; a request whose client disconnects leaves the queue; a 413 names the text as
the client sent it; probes answer HEAD; OpenAI base URLs without /v1 list the models.
"""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from sentsim.serve.app import create_app
from sentsim.serve.limits import ServeSettings
from sentsim.serve.queue import BatchQueue
from sentsim.serve.service import ServeError, Service, embed_texts

from .serve_support import FakeEngine, assert_error, unit, vector_for, wait_until

LONE = "a man \ud800 plays"
#: Every route that embeds text, with a body holding ``LONE`` where its client puts a text.
SURROGATE_BODIES = [
    ("/v1/embeddings", {"input": LONE}),
    ("/v1/embeddings", {"input": ["fine", LONE]}),
    ("/embeddings", {"input": [LONE]}),
    ("/embed", {"inputs": LONE}),
    ("/", {"inputs": [LONE]}),
    ("/similarity", {"pairs": [{"sentence1": "fine", "sentence2": LONE}]}),
    ("/similarity", {"inputs": {"source_sentence": LONE, "sentences": ["fine"]}}),
    ("/score", {"text_1": "fine", "text_2": [LONE]}),
    ("/rerank", {"query": LONE, "documents": ["fine"]}),
    ("/v2/rerank", {"query": "fine", "documents": [{"text": LONE}]}),
    ("/rerank", {"query": "fine", "texts": [LONE]}),
]


def _post_raw(client: TestClient, path: str, body: dict):
    """json.dumps writes a lone surrogate as JSON's escape; httpx's json= cannot encode one at all."""
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(("path", "body"), SURROGATE_BODIES)
def test_a_lone_surrogate_is_refused_with_its_request(client, fake, path, body):
    error = assert_error(_post_raw(client, path, body), 422)
    assert "surrogate" in error["message"]
    assert fake.batches == []  # refused before the queue


class PickyTokenizer(FakeEngine):
    """A fake whose tokenizer refuses any text holding "poison", as a real one refuses some inputs."""

    def tokenize(self, texts):
        if any("poison" in text for text in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return super().tokenize(texts)


def _ready_service(engine: FakeEngine) -> tuple[Service, BatchQueue]:
    """A service over ``engine`` with its queue's runner started, as the app's start-up leaves it."""
    service = Service(settings=ServeSettings())
    queue = BatchQueue(engine, max_batch_tokens=4096, max_concurrent_requests=16)
    service.engine, service.queue, service.status = engine, queue, "ready"
    queue.start()
    return service, queue


def test_a_text_the_tokenizer_refuses_fails_only_its_own_request():
    gate = threading.Event()
    engine = PickyTokenizer(gate=gate)
    _, queue = _ready_service(engine)

    async def scenario():
        first = asyncio.ensure_future(queue.embed(["hold the runner"]))
        await asyncio.to_thread(engine.started.wait, 5)  # the runner is busy: the next three arrive together
        jobs = [asyncio.ensure_future(queue.embed(texts)) for texts in (["good one"], ["a poison pill"], ["good two"])]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.wait_for(asyncio.gather(first, *jobs, return_exceptions=True), 5)

    try:
        first, good, bad, other = asyncio.run(scenario())
    finally:
        queue.stop()
    assert isinstance(bad, TypeError)
    assert all(not isinstance(result, BaseException) for result in (first, good, other))
    assert all(any(text in batch for batch in engine.batches) for text in ("good one", "good two"))


def test_a_request_whose_client_disconnects_leaves_the_queue():
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    service, queue = _ready_service(engine)

    def request(gone: asyncio.Event) -> SimpleNamespace:
        async def receive():
            await gone.wait()
            return {"type": "http.disconnect"}

        return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(service=service)), receive=receive)

    async def scenario():
        stays, leaves = asyncio.Event(), asyncio.Event()
        kept = asyncio.ensure_future(embed_texts(request(stays), ["kept request"], truncate=False, model=None))
        await asyncio.to_thread(engine.started.wait, 5)  # its forward holds the one runner
        abandoned = asyncio.ensure_future(embed_texts(request(leaves), [f"abandoned {n}" for n in range(50)],
                                                      truncate=False, model=None))
        await asyncio.sleep(0.05)
        leaves.set()  # the second client goes away while its sentences wait
        with pytest.raises(ServeError) as caught:
            await asyncio.wait_for(abandoned, 5)  # a queue that ignored the disconnect would wait for the gate
        assert caught.value.status == 499
        gate.set()
        vectors, _ = await asyncio.wait_for(kept, 5)
        await asyncio.to_thread(wait_until, lambda: queue.in_flight == 0)
        return vectors

    try:
        vectors = asyncio.run(scenario())
    finally:
        queue.stop()
    assert vectors.shape == (1, engine.embedding_dimension)
    assert not any(text.startswith("abandoned") for batch in engine.batches for text in batch)


@pytest.mark.parametrize(("path", "body", "name"), [
    ("/rerank", {"query": "q", "documents": ["three long words", "ok"]}, "documents[0]"),
    ("/rerank", {"query": "q", "texts": ["ok", "three long words"]}, "texts[1]"),
    ("/rerank", {"query": "three long words", "documents": ["ok"]}, "query"),
    ("/score", {"text_1": "q", "text_2": ["ok", "three long words"]}, "text_2[1]"),
    ("/score", {"text_1": ["ok", "three long words"], "text_2": ["a", "b"]}, "text_1[1]"),
    ("/similarity", {"pairs": [{"sentence1": "ok", "sentence2": "b"},
                               {"sentence1": "b", "sentence2": "three long words"}]}, "pairs[1].sentence2"),
    ("/similarity", {"inputs": {"source_sentence": "ok", "sentences": ["a", "three long words"]}}, "sentences[1]"),
    ("/v1/embeddings", {"input": ["ok", "three long words"]}, "input 1"),
])
def test_an_over_long_text_is_named_as_the_client_sent_it(path, body, name):
    with TestClient(create_app(ServeSettings(), FakeEngine(max_seq_length=4))) as client:
        error = assert_error(client.post(path, json=body), 413, "input_too_long")
    assert error["message"].startswith(f"{name} has 5 tokens"), error["message"]


@pytest.mark.parametrize("dimensions", [True, "4", 4.0, 0])
def test_dimensions_must_be_a_whole_number(client, dimensions):
    error = assert_error(client.post("/v1/embeddings", json={"input": "a", "dimensions": dimensions}), 422)
    assert "dimensions" in error["message"]


def test_an_empty_list_is_named_as_such(client):
    for path, body in (("/v1/embeddings", {"input": []}), ("/embed", {"inputs": []}), ("/", {"inputs": []})):
        assert "empty list" in assert_error(client.post(path, json=body), 422)["message"]


def test_models_without_v1_probes_answer_head_and_info_names_the_dtype(client):
    assert client.get("/models").json()["data"][0]["id"] == "fake-model"
    assert client.get("/models/fake-model").json()["id"] == "fake-model"
    assert_error(client.get("/models/other"), 404, "model_not_found")
    for path in ("/health", "/ready"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""
    assert client.get("/info").json()["model_dtype"] == "float32"  # the fake declares none


def test_the_torch_engine_reports_the_precision_it_serves_in(tiny_engine):
    with TestClient(create_app(ServeSettings(), tiny_engine)) as client:
        dtype = client.get("/info").json()["model_dtype"]
    assert dtype == {"bf16": "bfloat16", "fp32": "float32"}[tiny_engine.precision]


def test_tei_nulls_mean_the_defaults_and_embed_takes_dimensions(client):
    both = client.post("/embed", json={"inputs": ["a", "b"], "normalize": None, "truncate": None}).json()
    np.testing.assert_allclose(both, unit(np.stack([vector_for("a"), vector_for("b")])), atol=1e-6)
    for path in ("/embed", "/"):
        short = client.post(path, json={"inputs": "a", "dimensions": 3}).json()
        np.testing.assert_allclose(short, [unit(vector_for("a")[:3])], atol=1e-6)
    assert "dimensions" in assert_error(client.post("/embed", json={"inputs": "a", "dimensions": 99}), 422)["message"]
    assert_error(client.post("/rerank", json={"query": "q", "texts": ["a"], "truncation_direction": "Left"}), 422)


def test_cohere_path_cuts_long_documents_as_cohere_does():
    long_document = {"query": "q", "documents": ["three long words", "ok"]}
    with TestClient(create_app(ServeSettings(), FakeEngine(max_seq_length=4))) as client:
        ranked = client.post("/v2/rerank", json=long_document)
        assert ranked.status_code == 200 and len(ranked.json()["results"]) == 2
        assert_error(client.post("/v2/rerank", json={**long_document, "max_tokens_per_doc": 2}), 422,
                     "unsupported_truncation")
        assert client.post("/rerank", json={**long_document, "max_tokens_per_doc": 4096}).status_code == 200
        assert_error(client.post("/rerank", json=long_document), 413, "input_too_long")  # vLLM's path: refused


def test_tei_token_id_inputs_are_refused_by_name(client):
    for path in ("/embed", "/"):
        assert "token-id" in assert_error(client.post(path, json={"inputs": [[101, 7592, 102]]}), 422)["message"]


def test_a_prompt_the_pooling_would_leave_out_is_refused():
    engine = FakeEngine()
    engine.prompts, engine.include_prompt = {"query": "query: "}, False
    with TestClient(create_app(ServeSettings(), engine)) as client:
        assert client.post("/embed", json={"inputs": "a"}).status_code == 200  # no prompt: served
        error = assert_error(client.post("/embed", json={"inputs": "a", "prompt_name": "query"}), 422)
    assert "include_prompt" in error["message"]


def test_errors_carry_openais_param_field(client):
    body = client.post("/v1/embeddings", json={"input": "a", "dimensions": "x"}).json()["error"]
    assert body["param"] == "dimensions" and body["code"] == "invalid_request"
    assert client.post("/v1/embeddings", json={"input": "a", "model": "other"}).json()["error"]["param"] is None


def test_json_sent_without_a_json_content_type_is_read_as_json(client):
    """curl -d sends form-urlencoded unless told otherwise; the body can only mean JSON here."""
    for content_type in ("application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/embed", content=b'{"inputs": ["a", "b"]}', headers=headers)
        assert response.status_code == 200 and len(response.json()) == 2
    assert_error(client.post("/embed", content=b"inputs=a", headers={"Content-Type": "text/plain"}), 422)


def test_rerank_counts_its_query_once_and_score_takes_truncate():
    with TestClient(create_app(ServeSettings(max_client_batch_size=4), FakeEngine(max_seq_length=4))) as client:
        ranked = client.post("/rerank", json={"query": "q", "documents": ["a", "b", "c"]})  # 1 + 3 texts sent
        assert ranked.status_code == 200, ranked.text
        assert_error(client.post("/rerank", json={"query": "q", "documents": ["a", "b", "c", "d"]}), 413,
                     "too_many_inputs")
        tei = client.post("/similarity", json={"inputs": {"source_sentence": "q", "sentences": ["a", "b", "c"]}})
        assert tei.status_code == 200, tei.text
        long_pair = {"text_1": "q", "text_2": "three long words"}
        assert assert_error(client.post("/score", json=long_pair), 413)["message"].startswith("text_2 has 5 tokens")
        assert client.post("/score", json={**long_pair, "truncate": True}).status_code == 200  # as its 413 advises
        assert client.post("/rerank", json={"query": "q", "texts": ["a"], "truncate": None}).status_code == 200
        kept = {"query": "q", "documents": ["three long words"], "truncate": False}
        assert_error(client.post("/v2/rerank", json=kept), 413, "input_too_long")  # Cohere's default cut, refused


def test_a_json_syntax_error_has_no_param(client):
    response = client.post("/v1/embeddings", content=b'{"input": "a",', headers={"Content-Type": "application/json"})
    assert assert_error(response, 400, "invalid_json")["param"] is None
