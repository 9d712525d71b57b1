"""The HTTP service over real sockets: the openai client, httpx, schemathesis, and a clean SIGTERM stop."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")
import httpx
import uvicorn

from sentsim.inference.encode import encode
from sentsim.serve.app import create_app
from sentsim.serve.engine import TorchEngine
from sentsim.serve.limits import ServeSettings
from tests.serve_support import TEXTS, FakeEngine

KEY = "test-key"


@contextmanager
def live_server(app) -> Iterator[str]:
    """Runs ``app`` under uvicorn on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def tiny_served(tiny_transformer_dir: Path):
    from sentsim import SentenceTransformer

    model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
    return model, TorchEngine(model, name="tiny")


@pytest.fixture(scope="module")
def live_url(tiny_served) -> Iterator[str]:
    settings = ServeSettings(api_key=KEY, max_concurrent_requests=64)
    with live_server(create_app(settings, tiny_served[1])) as url:
        yield url


def test_openai_client_embeddings(live_url, tiny_served):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{live_url}/v1", api_key=KEY, max_retries=0)
    # The client asks for base64 by default and decodes it itself: that path is exercised here.
    response = client.embeddings.create(model="tiny", input=TEXTS)
    served = np.array([item.embedding for item in response.data])
    np.testing.assert_allclose(served, encode(tiny_served[0], TEXTS, normalize=True), atol=2e-3)
    assert [item.index for item in response.data] == [0, 1, 2] and response.model == "tiny"
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    floats = client.embeddings.create(model="tiny", input="a man is playing a flute", encoding_format="float",
                                      dimensions=16)
    assert len(floats.data[0].embedding) == 16
    assert np.linalg.norm(floats.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert [model.id for model in client.models.list()] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("text-embedding-3-small")
    without_v1 = openai.OpenAI(base_url=live_url, api_key=KEY, max_retries=0)  # a base URL missing /v1
    again = without_v1.embeddings.create(model="tiny", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose([item.embedding for item in again.data], served, atol=1e-6)


def test_openai_client_sees_typed_errors(live_url):
    openai = pytest.importorskip("openai")
    wrong = openai.OpenAI(base_url=f"{live_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.embeddings.create(model="tiny", input="x")
    assert caught.value.status_code == 401 and "API key" in str(caught.value)
    client = openai.OpenAI(base_url=f"{live_url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="at least 1 character"):
        client.embeddings.create(model="tiny", input="")


def test_huggingface_hub_inference_client_as_against_a_tei_server(live_url, tiny_served):
    """huggingface_hub's InferenceClient given a server URL posts to / in TEI's forms; both come back right."""
    hub = pytest.importorskip("huggingface_hub")
    client = hub.InferenceClient(model=live_url, token=KEY)
    vectors = client.feature_extraction(TEXTS, normalize=True)
    np.testing.assert_allclose(vectors, encode(tiny_served[0], TEXTS, normalize=True), atol=2e-3)
    assert client.feature_extraction(TEXTS[0]).shape == (1, tiny_served[0].embedding_dimension)
    scores = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS)
    unit = encode(tiny_served[0], TEXTS, normalize=True)
    np.testing.assert_allclose(scores, unit @ unit[0], atol=2e-3)
    with pytest.raises(hub.errors.HfHubHTTPError) as caught:
        hub.InferenceClient(model=live_url, token="wrong").feature_extraction("x")
    assert caught.value.response.status_code == 401


def test_httpx_routes_and_auth(live_url):
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=live_url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.post("/embed", json={"inputs": "x"}).status_code == 401
        vectors = client.post("/embed", json={"inputs": TEXTS}, headers=headers).json()
        assert np.array(vectors).shape == (3, 32)
        packed = client.post("/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "base64"},
                             headers=headers).json()["data"][0]["embedding"]
        np.testing.assert_allclose(np.frombuffer(base64.b64decode(packed), "<f4"), vectors[0], atol=1e-6)
        pairs = {"pairs": [{"sentence1": TEXTS[0], "sentence2": TEXTS[1]}]}
        scored = client.post("/similarity", json=pairs, headers=headers).json()["data"][0]
        assert -1.0 <= scored["cosine"] <= 1.0 and scored["score"] is None
        assert "sentsim_requests_total" in client.get("/metrics", headers=headers).text


def test_many_concurrent_clients_get_their_own_results(live_url, tiny_served):
    import asyncio

    requests = [[f"a man is playing {word} {index}" for word in ("a flute", "the piano")[: 1 + index % 2]]
                for index in range(40)]
    expected = [encode(tiny_served[0], texts, normalize=True) for texts in requests]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_url, timeout=60,
                                     headers={"Authorization": f"Bearer {KEY}"}) as client:
            return await asyncio.gather(*(client.post("/embed", json={"inputs": texts}) for texts in requests))

    for response, vectors in zip(asyncio.run(run()), expected, strict=True):
        assert response.status_code == 200
        np.testing.assert_allclose(np.array(response.json()), vectors, atol=2e-3)


def test_a_client_that_hangs_up_takes_its_sentences_out_of_the_queue():
    """Over a real socket: the closed connection reaches uvicorn, the request is cancelled, nothing embedded."""
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    app = create_app(ServeSettings(), engine)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        kept = threading.Thread(target=lambda: client.post("/embed", json={"inputs": ["kept"]}), daemon=True)
        kept.start()
        assert engine.started.wait(10)  # the one runner holds "kept" at the gate
        queue = app.state.service.queue
        body = json.dumps({"inputs": [f"abandoned {n}" for n in range(50)]}).encode()
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            deadline = time.monotonic() + 10
            while queue.in_flight < 2:  # queued behind "kept"
                assert time.monotonic() < deadline, "the second request never reached the queue"
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while queue.in_flight > 1:  # hung up: cancelled while "kept" still runs
            assert time.monotonic() < deadline, "the abandoned request stayed in the queue"
            time.sleep(0.01)
        gate.set()
        kept.join(10)
    assert engine.batches == [["kept"]]


# -- schemathesis: whatever the schema allows, the server never answers 5xx -------------------------
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

# The schema does not depend on the model, so it is read from an app over a stand-in engine.
schema = schemathesis.openapi.from_dict(create_app(ServeSettings(), FakeEngine()).openapi())


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_for_generated_requests(case, live_url):
    case.call_and_validate(base_url=live_url, checks=[not_a_server_error], headers={"Authorization": f"Bearer {KEY}"})


# -- SIGTERM: stop accepting, finish what is running, exit 0 --------------------------------------------
SLOW_SERVER = """
import sys, time
import sentsim.serve.server as server

load = server.load_engine

class Slow:
    def __init__(self, engine):
        self.engine = engine
        for name in ("name", "max_seq_length", "embedding_dimension", "calibration", "parallel_runs",
                     "batch_size", "run_overhead"):
            setattr(self, name, getattr(engine, name))
    def tokenize(self, texts):
        return self.engine.tokenize(texts)
    def embed_tokens(self, ids):
        time.sleep(2.0)
        return self.engine.embed_tokens(ids)

server.load_engine = lambda *args, **options: Slow(load(*args, **options))
sys.exit(server.serve(sys.argv[1], port=int(sys.argv[2]), log_level="warning"))
"""


def test_sigterm_finishes_in_flight_requests_and_exits_zero(tiny_model, tmp_path):
    folder = tiny_model.save(tmp_path / "model")
    port, url = _free_loopback()
    process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(folder), str(port)],
                               env={**os.environ, "SENTSIM_API_KEY": ""})
    try:
        _wait_ready(url, process)
        result: dict[str, httpx.Response] = {}
        request = threading.Thread(target=lambda: result.update(
            response=httpx.post(f"{url}/embed", json={"inputs": TEXTS}, timeout=30)))
        request.start()
        _wait_for_queue(url)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):  # no new connections while draining
            httpx.get(f"{url}/health", timeout=2)
        request.join(30)
        assert result["response"].status_code == 200 and len(result["response"].json()) == 3
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def _free_loopback() -> tuple[int, str]:
    """A port nothing listens on now, and the base URL a server started on it will have."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return port, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited early"
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server never became ready")


def _wait_for_queue(url: str) -> None:
    deadline = time.monotonic() + 10
    while "sentsim_queue_depth 1.0" not in httpx.get(f"{url}/metrics", timeout=2).text:
        assert time.monotonic() < deadline, "the request never reached the queue"
        time.sleep(0.02)


def test_metrics_count_every_worker_whichever_one_answers_the_scrape(tiny_model, tmp_path):
    """``--workers 2``: each scrape reports the requests of both workers, and the shared folder is removed."""
    folder = tiny_model.save(tmp_path / "model")
    port, url = _free_loopback()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "sentsim", "serve", str(folder), "--port", str(port),
                                "--workers", "2", "--log-level", "warning"],
                               env={**os.environ, "SENTSIM_API_KEY": "", "TMPDIR": str(scratch)})
    try:
        deadline, in_a_row = time.monotonic() + 90, 0
        while in_a_row < 40:  # both workers loaded (the kernel hands each new connection to either)
            assert time.monotonic() < deadline and process.poll() is None, "the workers never all became ready"
            try:
                in_a_row = in_a_row + 1 if httpx.get(f"{url}/ready", timeout=5).status_code == 200 else 0
            except httpx.TransportError:
                in_a_row = 0
                time.sleep(0.1)
        requests = 24
        for _ in range(requests):  # a new connection each: spread over the workers
            assert httpx.post(f"{url}/embed", json={"inputs": TEXTS}, timeout=30).status_code == 200
        pattern = re.compile(r'^sentsim_requests_total\{route="/embed",status="200"\} (\S+)$', re.M)
        counts = {float(pattern.search(httpx.get(f"{url}/metrics", timeout=5).text).group(1)) for _ in range(8)}
        assert counts == {requests}
        assert any(path.name.startswith("sentsim-metrics-") for path in scratch.iterdir())
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not any(path.name.startswith("sentsim-metrics-") for path in scratch.iterdir())
    finally:
        if process.poll() is None:
            process.kill()


def test_ollama_client_embed_and_embeddings(live_url, tiny_served):
    """The ``ollama`` Python client (what LangChain's OllamaEmbeddings calls) pointed at this server."""
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=live_url, headers={"Authorization": f"Bearer {KEY}"})
    response = client.embed(model="tiny", input=TEXTS)
    np.testing.assert_allclose(np.array(response.embeddings), encode(tiny_served[0], TEXTS, normalize=True),
                               atol=2e-3)
    assert response.prompt_eval_count > 0
    older = client.embeddings(model="tiny:latest", prompt=TEXTS[0])
    np.testing.assert_allclose(older.embedding, encode(tiny_served[0], TEXTS[0]), atol=2e-3)
    assert [entry.model for entry in client.list().models] == ["tiny:latest"]  # Ollama lists name:tag
    assert client.embed(model="tiny").embeddings == []  # the client's default input "": a preload, as in Ollama
    with pytest.raises(ollama.ResponseError) as raised:
        client.embed(model="llama3", input="a")
    assert raised.value.status_code == 404 and "not served here" in raised.value.error


def test_cohere_client_rerank(live_url, tiny_served):
    """The ``cohere`` client's v2 rerank (what LangChain's CohereRerank calls) pointed at this server."""
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key=KEY, base_url=live_url)
    documents = [TEXTS[1], TEXTS[0], TEXTS[2]]
    response = client.rerank(model="tiny", query=TEXTS[0], documents=documents, top_n=2)
    embeddings = encode(tiny_served[0], [TEXTS[0], *documents], normalize=True)
    cosines = embeddings[1:] @ embeddings[0]
    assert [result.index for result in response.results] == list(np.argsort(-cosines)[:2])
    assert response.results[0].index == 1
    np.testing.assert_allclose([result.relevance_score for result in response.results],
                               np.sort(cosines)[::-1][:2], atol=2e-3)
    with pytest.raises(cohere.core.api_error.ApiError) as raised:
        client.rerank(model="rerank-v3.5", query="a", documents=["b"])
    assert raised.value.status_code == 404
