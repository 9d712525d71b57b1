"""TEI's POST /tokenize and POST /decode: the served tokenizer's tokens (prompt included, uncut) and texts back."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from sentsim.serve.app import create_app
from sentsim.serve.limits import ServeSettings

from .serve_support import assert_error


def test_tokenize_lists_each_token_with_its_span(tiny_model, tiny_engine):
    text = "A man is playing the flute, riding a horse."
    with TestClient(create_app(ServeSettings(), tiny_engine)) as client:
        response = client.post("/tokenize", json={"inputs": text})
        assert response.status_code == 200, response.text
        [tokens] = response.json()
        expected = tiny_model.tokenizer(text)["input_ids"]
        assert [token["id"] for token in tokens] == expected
        assert tokens[0] == {"id": expected[0], "text": "[CLS]", "special": True, "start": None, "stop": None}
        assert tokens[-1]["special"] and not any(token["special"] for token in tokens[1:-1])
        for token in tokens[1:-1]:  # every piece is the text's own characters at its span
            assert text[token["start"]:token["stop"]] == token["text"]
        plain = client.post("/tokenize", json={"inputs": [text, ""], "add_special_tokens": False}).json()
        assert [token["id"] for token in plain[0]] == expected[1:-1] and plain[1] == []


def test_tokenize_shows_the_prompt_embed_would_add_and_never_cuts(tiny_model, tiny_engine):
    tiny_engine.prompts = {"query": "query: "}
    long_text = "a man is playing a flute " * 20
    with TestClient(create_app(ServeSettings(), tiny_engine)) as client:
        [with_prompt] = client.post("/tokenize", json={"inputs": "a dog", "prompt_name": "query"}).json()
        assert [token["id"] for token in with_prompt] == tiny_model.tokenizer("query: a dog")["input_ids"]
        assert_error(client.post("/tokenize", json={"inputs": "a dog", "prompt_name": "passage"}), 422,
                     "unknown_prompt")
        [uncut] = client.post("/tokenize", json={"inputs": long_text}).json()
        assert len(uncut) > tiny_engine.max_seq_length  # so a client can see how far over the limit it is


def test_decode_turns_ids_back_into_text_and_refuses_unknown_ids(tiny_model, tiny_engine):
    ids = tiny_model.tokenizer("a man is playing the flute")["input_ids"]
    with TestClient(create_app(ServeSettings(), tiny_engine)) as client:
        assert client.post("/decode", json={"ids": ids}).json() == ["a man is playing the flute"]
        both = client.post("/decode", json={"ids": [ids, ids[:2]], "skip_special_tokens": False}).json()
        assert both[0].startswith("[CLS] a man is") and both[0].endswith("[SEP]") and len(both) == 2
        assert_error(client.post("/decode", json={"ids": [10**6]}), 422, "invalid_token_id")
        for bad in ([-1], [], "a man", [1.5]):
            assert client.post("/decode", json={"ids": bad}).status_code == 422


def test_limits_and_engines_without_a_tokenizer(fake, tiny_engine):
    with TestClient(create_app(ServeSettings(max_client_batch_size=2), tiny_engine)) as client:
        assert_error(client.post("/tokenize", json={"inputs": ["a", "b", "c"]}), 413, "too_many_inputs")
        assert_error(client.post("/decode", json={"ids": [[1], [2], [3]]}), 413, "too_many_inputs")
        assert client.post("/tokenize", json={"inputs": []}).status_code == 422
    with TestClient(create_app(ServeSettings(), fake)) as client:  # a test double with no real tokenizer
        assert_error(client.post("/tokenize", json={"inputs": "a"}), 501, "not_implemented")
