"""The HTTP service in-process (FastAPI TestClient): limits, every error path, and the serve command."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from sentsim.errors import ConfigError
from sentsim.inference.encode import encode
from sentsim.serve.app import create_app
from sentsim.serve.engine import Engine, TorchEngine
from sentsim.serve.limits import ServeSettings

from .serve_support import TEXTS, FakeEngine, assert_error, wait_until


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
    json_type = {"Content-Type": "application/json"}
    broken = assert_error(client.post("/embed", content=b'{"inputs": [1,', headers=json_type),
                          400, "invalid_json")  # not JSON at all: 400, as TEI, OpenAI, Ollama and vLLM answer
    assert broken["message"].startswith("the request body is not valid JSON (at character ") and broken["param"] is None
    ollama = client.post("/api/embed", content=b"{not json", headers=json_type)
    assert ollama.status_code == 400 and ollama.json()["error"].startswith("the request body is not valid JSON")
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
        wait_until(lambda: client.get("/ready").status_code == 200)
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200


def test_failed_load_is_reported_not_hidden():
    def loader() -> FakeEngine:
        raise ConfigError("no model folder at /nowhere")

    with TestClient(create_app(ServeSettings(), loader=loader, model_name="/nowhere")) as client:
        wait_until(lambda: client.get("/ready").json()["status"] == "failed")
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
    import socket

    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2  # uvicorn would listen on 70000 - 65536
    assert "between 1 and 65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", str(tmp_path), "--port", str(taken.getsockname()[1])]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: cannot listen on 127.0.0.1:") and len(error.splitlines()) == 1


def test_serve_refuses_a_run_folder_or_an_empty_one_before_starting(capsys, tmp_path, monkeypatch):
    """A run folder given for its model is said at once (exit 2), not logged after the server is up."""
    from sentsim.cli import main
    from sentsim.serve import server

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "modules.json").write_text("[]")
    monkeypatch.setattr(server, "_log_setup", lambda level: pytest.fail("the server was started"))
    assert main(["serve", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: {tmp_path} is a training run folder; its model is {tmp_path / 'model'}"
    (tmp_path / "notes").mkdir()
    assert main(["serve", str(tmp_path / "notes")]) == 2
    assert "holds no model (no modules.json, config.json or onnx/ in it)" in capsys.readouterr().err


def test_serve_tokenizer_cuts_like_the_model_and_reports_uncut_lengths(tiny_model):
    from sentsim.serve.engine import ServeTokenizer

    limit = tiny_model.max_seq_length
    texts = ["a short one", " ".join(["dog"] * (limit * 3)), "Mixed CASE text"]
    tokenize = ServeTokenizer(tiny_model.transformer.tokenizer.backend_tokenizer.to_str(), max_seq_length=limit,
                              lower_case=tiny_model.transformer.do_lower_case)
    ids, lengths = tokenize(texts)
    assert ids == [list(row) for row in tiny_model.token_ids(texts)]
    assert lengths[0] == len(ids[0]) and lengths[2] == len(ids[2])
    assert len(ids[1]) == limit and lengths[1] == limit * 3 + 2  # "dog" is one token, plus [CLS]/[SEP]


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
