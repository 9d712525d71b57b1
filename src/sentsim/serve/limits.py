"""The server's request limits and options, with defaults sized for a small CPU box."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from sentsim.errors import ConfigError

#: Environment variable that supplies the API key when ``--api-key`` is not given.
API_KEY_ENV = "SENTSIM_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    """Limits every request is checked against, and the knobs of the batching queue.

    Attributes:
        max_batch_tokens: token budget of one forward pass (real tokens, special tokens included).
            Concurrent requests are merged until the budget is reached; bigger requests are split.
            4096 is about 290 STS-length sentences, half a second on two cores: large enough to
            keep the CPU busy, small enough that a new request waits little behind the running batch.
        max_client_batch_size: most sentences one request may carry (a pair counts as two).
        max_input_chars: longest accepted input string; caps tokenizer work before truncation.
        payload_limit: largest request body in bytes (checked on ``Content-Length`` and on the bytes read).
        max_concurrent_requests: requests queued or running at once; one more gets 429 with ``Retry-After``.
        api_key: when set, every route but ``/health`` and ``/ready`` needs ``Authorization: Bearer KEY``.
        inner_batch_size: sentences per forward inside a merged batch (``encode``'s ``batch_size``).
        runners: forwards run at once, each on its own thread with an equal share of the cores;
            ``None``: one per physical core (divided among ``--workers`` processes). 1 runs one
            forward at a time over every core. Several single-threaded forwards served 10–60 %
            more sentences/s than one forward on both cores of a 2-core box under load (the
            event loop's slices of a core no longer stall every thread of a forward).
    """

    max_batch_tokens: int = 4096
    max_client_batch_size: int = 256
    max_input_chars: int = 20_000
    payload_limit: int = 2_000_000
    max_concurrent_requests: int = 256
    api_key: str | None = None
    inner_batch_size: int = 32
    runners: int | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "runners" and value is None:
                continue
            if field.name != "api_key" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{field.name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api-key must not be empty")

    @classmethod
    def with_environment_key(cls, *, api_key: str | None = None, **options: int | None) -> ServeSettings:
        """Settings whose key comes from ``api_key`` or else from ``SENTSIM_API_KEY`` (empty = none)."""
        key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        return cls(api_key=key, **options)
