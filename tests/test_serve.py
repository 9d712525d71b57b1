"""The HTTP service in-process (FastAPI TestClient): routes, results, limits and every error path."""

from __future__ import annotations

import base64
import json
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from sentsim.errors import ConfigError
from sentsim.inference.calibration import IsotonicCalibration
from sentsim.inference.encode import encode
from sentsim.serve.app import create_app
from sentsim.serve.engine import Engine, TorchEngine
from sentsim.serve.limits import ServeSettings

TEXTS = ["a man is playing a flute", "a dog is running in the park", "two children are playing ball"]


class FakeEngine:
    """Deterministic vectors from the text (so a mix-up between requests shows), batches recorded."""

    def __init__(self, *, dimension: int = 8, max_seq_length: int = 16, gate: threading.Event | None = None,
                 fail: bool = False, parallel_runs: int = 1) -> None:
        self.name = "fake-model"
        self.parallel_runs = parallel_runs
        self.batch_size = 32
        self.run_overhead = None
        self.max_seq_length = max_seq_length
        self.embedding_dimension = dimension
        self.calibration = None
        self.prompts: dict[str, str] = {}
        self.default_prompt_name = None
        self.gate = gate
        self.fail = fail
        self.batches: list[list[str]] = []
        self.started = threading.Event()

    def tokenize(self, texts):
        """Ids stand for their text (so ``embed_tokens`` can tell them apart): len = words + 2, cut at the limit."""
        self.texts = getattr(self, "texts", [])
        ids, lengths = [], []
        for text in texts:
            self.texts.append(text)
            length = len(text.split()) + 2
            ids.append([len(self.texts) - 1] * min(length, self.max_seq_length))
            lengths.append(length)
        return ids, lengths

    def embed_tokens(self, ids):
        texts = [self.texts[row[0]] for row in ids]
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.fail:
            raise RuntimeError("secret internal detail")
        self.batches.append(list(texts))
        return np.stack([vector_for(text, self.embedding_dimension) for text in texts])


def vector_for(text: str, dimension: int = 8) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(text.encode())).standard_normal(dimension).astype(np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True)


def assert_error(response, status: int, code: str | int | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(fake):
    with TestClient(create_app(ServeSettings(), fake)) as test_client:
        yield test_client


@pytest.fixture
def tiny_engine(tiny_model) -> TorchEngine:
    return TorchEngine(tiny_model, name="tiny")


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
        _wait_until(lambda: client.app.state.service.queue.in_flight == 2)
        small_future = pool.submit(client.post, "/embed", json={"inputs": ["small one"], "normalize": False})
        _wait_until(lambda: client.app.state.service.queue.in_flight == 3)
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


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# -- limits and errors ---------------------------------------------------------------------------
def test_api_key_guards_every_route_but_health_and_ready(fake):
    with TestClient(create_app(ServeSettings(api_key="s3cret"), fake)) as client:
        error = assert_error(client.post("/v1/embeddings", json={"input": "x"}), 401, "invalid_api_key")
        assert "Bearer" in error["message"]
        wrong = client.post("/v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401) and wrong.headers["www-authenticate"] == "Bearer"
        for path in ("/v1/models", "/metrics", "/docs", "/openapi.json"):
            assert_error(client.get(path), 401)
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/embeddings", json={"input": "x"}, headers=good).status_code == 200
        assert client.get("/metrics", headers=good).status_code == 200


def test_api_key_from_environment(monkeypatch):
    monkeypatch.setenv("SENTSIM_API_KEY", "from-env")
    assert ServeSettings.with_environment_key().api_key == "from-env"
    assert ServeSettings.with_environment_key(api_key="flag").api_key == "flag"
    monkeypatch.setenv("SENTSIM_API_KEY", "")
    assert ServeSettings.with_environment_key().api_key is None


def test_payload_limit_on_declared_and_actual_size(fake):
    with TestClient(create_app(ServeSettings(payload_limit=200), fake)) as client:
        big = json.dumps({"input": ["word " * 50]})
        assert_error(client.post("/v1/embeddings", content=big, headers={"Content-Type": "application/json"}),
                     413, "payload_too_large")

        def chunked():  # no Content-Length: only counting the bytes read catches it
            yield big[:100].encode()
            yield big[100:].encode()

        assert_error(client.post("/v1/embeddings", content=chunked(), headers={"Content-Type": "application/json"}),
                     413, "payload_too_large")
        assert client.post("/v1/embeddings", json={"input": "short"}).status_code == 200


def test_input_count_and_length_limits(fake):
    settings = ServeSettings(max_client_batch_size=3, max_input_chars=20)
    with TestClient(create_app(settings, fake)) as client:
        error = assert_error(client.post("/embed", json={"inputs": ["a"] * 4}), 413, "too_many_inputs")
        assert "max-client-batch-size" in error["message"] and "3" in error["message"]
        pairs = [{"sentence1": "a", "sentence2": "b"}] * 2  # four sentences
        assert_error(client.post("/similarity", json={"pairs": pairs}), 413, "too_many_inputs")
        error = assert_error(client.post("/embed", json={"inputs": "x" * 21}), 413, "input_too_long")
        assert "max-input-chars" in error["message"]


def test_over_long_inputs_need_truncate(tiny_engine):
    long_text = "a man is playing a flute " * 20  # 120 words > max_seq_length 64
    with TestClient(create_app(ServeSettings(), tiny_engine)) as client:
        for path, body in (("/v1/embeddings", {"input": [TEXTS[0], long_text]}), ("/embed", {"inputs": long_text}),
                           ("/similarity", {"pairs": [{"sentence1": long_text, "sentence2": TEXTS[0]}]})):
            error = assert_error(client.post(path, json=body), 413, "input_too_long")
            assert "max_seq_length" in error["message"] and "64" in error["message"]
            assert client.post(path, json={**body, "truncate": True}).status_code == 200
        usage = client.post("/v1/embeddings", json={"input": long_text, "truncate": True}).json()["usage"]
        tei_similarity = {"inputs": {"source_sentence": long_text, "sentences": [TEXTS[0]]}}
        for path in ("/similarity", "/"):  # TEI's forms, its truncate flag inside "parameters"
            assert_error(client.post(path, json=tei_similarity), 413, "input_too_long")
            assert client.post(path, json={**tei_similarity, "parameters": {"truncate": True}}).status_code == 200
        assert_error(client.post("/", json={"inputs": long_text}), 413, "input_too_long")
        assert client.post("/", json={"inputs": long_text, "truncate": True}).status_code == 200
    assert usage["prompt_tokens"] == 64


def test_the_root_route_answers_teis_embed_and_similarity_forms(client):
    embedded = client.post("/", json={"inputs": TEXTS, "normalize": False})
    assert embedded.status_code == 200
    assert embedded.json() == client.post("/embed", json={"inputs": TEXTS, "normalize": False}).json()
    form = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}}
    assert client.post("/", json=form).json() == client.post("/similarity", json=form).json()
    assert_error(client.post("/", json={"inputs": {"source_sentence": "x"}}), 422, "invalid_request")
    assert_error(client.post("/", json={"inputs": ""}), 422, "invalid_request")


@pytest.mark.parametrize("body", [
    {"input": ""}, {"input": []}, {"input": ["ok", ""]}, {"input": 3}, {"input": [[1, 2, 3]]}, {},
    {"input": "x", "encoding_format": "hex"}, {"input": "x", "dimensions": "big"},
])
def test_schema_errors_are_422_in_the_error_shape(client, body):
    assert_error(client.post("/v1/embeddings", json=body), 422, "invalid_request")


@pytest.mark.parametrize("tokens", [[[101, 2023, 102]], [101, 2023], 7])
def test_openai_token_id_inputs_are_refused_with_what_to_send(client, tokens):
    error = assert_error(client.post("/v1/embeddings", json={"input": tokens}), 422, "invalid_request")
    assert error["message"].startswith("input: token-id inputs are not supported: send the text itself")
    assert "check_embedding_ctx_length=False" in error["message"]


def test_malformed_json_and_unknown_routes(client):
    assert_error(client.post("/embed", content=b"{not json", headers={"Content-Type": "application/json"}), 422)
    assert_error(client.get("/nowhere"), 404)
    assert_error(client.get("/embed"), 405)
    assert_error(client.post("/embed", json={"inputs": [""]}), 422)


def test_full_queue_gives_429_with_retry_after():
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    with TestClient(create_app(ServeSettings(max_concurrent_requests=1), engine)) as client, \
            ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.post, "/embed", json={"inputs": ["first"]})
        assert engine.started.wait(5)
        refused = client.post("/v1/embeddings", json={"input": "second"})
        error = assert_error(refused, 429, "queue_full")
        assert int(refused.headers["retry-after"]) >= 1 and "1 concurrent" in error["message"]
        assert client.get("/health").status_code == 200  # probes still answer
        gate.set()
        assert running.result().status_code == 200
        assert client.post("/embed", json={"inputs": ["third"]}).status_code == 200


def test_503_while_loading_then_ready():
    release = threading.Event()

    def loader() -> FakeEngine:
        assert release.wait(10)
        return FakeEngine()

    with TestClient(create_app(ServeSettings(), loader=loader, model_name="slow")) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503 and client.get("/ready").json()["status"] == "loading"
        response = client.post("/v1/embeddings", json={"input": "x"})
        assert_error(response, 503, "model_loading") and response.headers["retry-after"] == "1"
        assert_error(client.get("/v1/models"), 503)
        release.set()
        _wait_until(lambda: client.get("/ready").status_code == 200)
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200


def test_failed_load_is_reported_not_hidden():
    def loader() -> FakeEngine:
        raise ConfigError("no model folder at /nowhere")

    with TestClient(create_app(ServeSettings(), loader=loader, model_name="/nowhere")) as client:
        _wait_until(lambda: client.get("/ready").json()["status"] == "failed")
        error = assert_error(client.post("/embed", json={"inputs": "x"}), 503, "model_failed")
        assert "/nowhere" in error["message"]


def test_engine_failure_is_a_json_500_without_details():
    with TestClient(create_app(ServeSettings(), FakeEngine(fail=True)), raise_server_exceptions=False) as client:
        error = assert_error(client.post("/embed", json={"inputs": "x"}), 500, "internal_error")
        assert "secret" not in error["message"]
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("options", [{"max_batch_tokens": 0}, {"payload_limit": -1}, {"api_key": " "},
                                     {"runners": 0}, {"runners": True}])
def test_bad_settings_are_config_errors(options):
    with pytest.raises(ConfigError):
        ServeSettings(**options)


def test_onnx_backend_serves_the_exported_model(tiny_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sentsim.export.onnx_export import export_model
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder
    from sentsim.serve.engine import OnnxEngine, load_engine

    exported = export_model(tiny_model.save(tmp_path / "model"), tmp_path / "exported")
    engine = load_engine(exported, backend="onnx", runners=2)
    assert isinstance(engine, OnnxEngine) and isinstance(engine, Engine) and engine.parallel_runs == 2
    long_text = "a man is playing a flute " * 20
    with TestClient(create_app(ServeSettings(), engine)) as client:
        served = np.array(client.post("/embed", json={"inputs": TEXTS}).json())
        assert_error(client.post("/embed", json={"inputs": long_text}), 413, "input_too_long")
        assert client.post("/embed", json={"inputs": [long_text, TEXTS[0]], "truncate": True}).status_code == 200
    offline_onnx = OnnxSentenceEncoder(exported).encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(served, offline_onnx, atol=1e-5)
    np.testing.assert_allclose(served, encode(tiny_model, TEXTS, normalize=True), atol=2e-3)


def test_unknown_backend_is_a_config_error():
    from sentsim.serve.engine import load_engine

    with pytest.raises(ConfigError, match="backend"):
        load_engine("anything", backend="tensorrt")
    with pytest.raises(ConfigError, match="runners"):
        load_engine("anything", backend="onnx", runners=0)


# -- the command -----------------------------------------------------------------------------------
def test_serve_command_passes_options_and_environment_key(monkeypatch):
    import sentsim.serve.server as server
    from sentsim.cli import main

    seen = {}
    monkeypatch.setattr(server, "serve", lambda model, **options: seen.update(model=model, **options) or 0)
    monkeypatch.setenv("SENTSIM_API_KEY", "env-key")
    assert main(["serve", "my-model", "--port", "9001", "--backend", "onnx", "--max-batch-tokens", "512",
                 "--max-concurrent-requests", "7", "--workers", "2"]) == 0
    assert seen["model"] == "my-model" and seen["port"] == 9001 and seen["host"] == "127.0.0.1"
    assert seen["backend"] == "onnx" and seen["workers"] == 2
    settings = seen["settings"]
    assert (settings.max_batch_tokens, settings.max_concurrent_requests, settings.api_key) == (512, 7, "env-key")
    assert settings.payload_limit == ServeSettings().payload_limit
    assert settings.runners is None  # one per core, decided where the model loads
    main(["serve", "my-model", "--api-key", "flag-key", "--runners", "1"])
    assert seen["settings"].api_key == "flag-key" and seen["settings"].runners == 1


def test_workers_share_the_cores_between_their_runners(monkeypatch, tiny_model, tmp_path):
    import json

    import uvicorn

    import sentsim.serve.server as server

    monkeypatch.setattr("sentsim.environment.physical_cores", lambda: 8)
    monkeypatch.setattr(server, "_keep_exit_status_on_signals", lambda: None)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **options: None)
    monkeypatch.delenv(server.OPTIONS_ENV, raising=False)
    folder = tiny_model.save(tmp_path / "model")
    assert server.serve(folder, workers=4) == 0
    assert json.loads(server.os.environ[server.OPTIONS_ENV])["settings"]["runners"] == 2
    assert server.serve(folder, workers=4, settings=ServeSettings(runners=3)) == 0
    assert json.loads(server.os.environ[server.OPTIONS_ENV])["settings"]["runners"] == 3
    monkeypatch.delenv(server.OPTIONS_ENV)


def test_serve_command_refuses_bad_input_with_exit_2(capsys, tmp_path):
    from sentsim.cli import main

    assert main(["serve", str(tmp_path / "nowhere")]) == 2
    assert main(["serve", str(tmp_path), "--max-client-batch-size", "0"]) == 2
    assert main(["serve", str(tmp_path), "--workers", "0"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)


def test_serve_tokenizer_cuts_like_the_model_and_reports_uncut_lengths(tiny_model):
    from sentsim.serve.engine import ServeTokenizer

    limit = tiny_model.max_seq_length
    texts = ["a short one", " ".join(["word"] * (limit * 3)), "Mixed CASE text"]
    tokenize = ServeTokenizer(tiny_model.transformer.tokenizer.backend_tokenizer.to_str(), max_seq_length=limit,
                              lower_case=tiny_model.transformer.do_lower_case)
    ids, lengths = tokenize(texts)
    assert ids == [list(row) for row in tiny_model.token_ids(texts)]
    assert lengths[0] == len(ids[0]) and lengths[2] == len(ids[2])
    assert len(ids[1]) == limit and lengths[1] == limit * 3 + 2  # every "word" is one token, plus [CLS]/[SEP]


def test_prompts_apply_as_in_encode_and_teis_prompt_name_is_honoured(tiny_transformer_dir):
    from sentsim import SentenceTransformer
    from sentsim.inference.encode import encode

    model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
    model.prompts = {"query": "query: ", "doc": "passage: "}
    model.default_prompt_name = "doc"
    with TestClient(create_app(ServeSettings(), TorchEngine(model, name="tiny"))) as client:
        default = np.array(client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "float"})
                           .json()["data"][0]["embedding"])
        np.testing.assert_allclose(default, model.encode(TEXTS, normalize_embeddings=True)[0], atol=2e-3)
        for path in ("/embed", "/"):
            query = np.array(client.post(path, json={"inputs": TEXTS, "prompt_name": "query"}).json())
            np.testing.assert_allclose(query, encode(model, ["query: " + text for text in TEXTS], normalize=True),
                                       atol=2e-3)
            unknown = client.post(path, json={"inputs": TEXTS, "prompt_name": "nope"})
            error = assert_error(unknown, 422, "unknown_prompt")
            assert "'doc', 'query'" in error["message"]
            assert_error(client.post(path, json={"inputs": TEXTS, "truncation_direction": "Left"}), 422)
        form = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}, "parameters": {"prompt_name": "query"}}
        scores = client.post("/similarity", json=form).json()
        unit = encode(model, ["query: " + text for text in TEXTS], normalize=True)
        np.testing.assert_allclose(scores, (unit[1:] @ unit[0]).tolist(), atol=2e-3)


def test_tei_info_names_the_model_and_the_limits(client):
    body = client.get("/info").json()
    assert body["model_id"] == "fake-model" and body["max_input_length"] == 16
    assert body["max_client_batch_size"] == ServeSettings().max_client_batch_size and body["embedding_dimension"] == 8
    assert body["auto_truncate"] is False and body["version"]
    assert body["model_type"] == {"embedding": {"pooling": "mean"}}
