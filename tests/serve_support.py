"""What the HTTP service tests share: a fake engine with vectors derived from the text, and checks."""

from __future__ import annotations

import threading
import time
import zlib

import numpy as np

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


def wait_until(condition, timeout: float = 5.0) -> None:
    """Polls ``condition`` until it holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)
