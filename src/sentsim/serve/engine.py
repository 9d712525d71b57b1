"""What the batching queue needs from a model, and the adapters that load one per backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from sentsim.errors import ConfigError
from sentsim.inference.batches import ONNX_RUN_OVERHEAD_TOKENS, TORCH_RUN_OVERHEAD_TOKENS

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer
    from sentsim.inference.calibration import IsotonicCalibration
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

Backend = Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")

logger = logging.getLogger(__name__)


@runtime_checkable
class Engine(Protocol):
    """A loaded sentence encoder as the server sees it.

    Both methods are called from the queue's runner threads, never from the event loop: ``tokenize``
    from one runner at a time, ``embed_tokens`` from up to ``parallel_runs`` at once (so an engine
    with ``parallel_runs`` 1 need not be thread-safe). Tokenising there, not on the event loop,
    matters for speed: a tokenizer call releases the GIL and then waits to get it back from whichever
    thread took it, so on a busy two-core box counting tokens on the loop cost 16 % of a core; on a
    runner each text is tokenised once.
    """

    name: str
    max_seq_length: int
    embedding_dimension: int
    calibration: IsotonicCalibration | None
    #: Forwards that may run at once (each on its own runner thread).
    parallel_runs: int
    #: Most sentences in one forward; the queue cuts its batches into forwards of this size.
    batch_size: int
    #: What one forward costs beyond its tokens, in padded tokens (``length_sorted_batches``).
    run_overhead: int | None
    #: The model's saved prompts and the one ``encode`` prepends by default (``config_sentence_transformers.json``).
    prompts: dict[str, str]
    default_prompt_name: str | None

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids per text cut to ``max_seq_length``, and each text's token count *before* the cut."""
        ...

    def embed_tokens(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """``(len(ids), embedding_dimension)`` float32 embeddings of ids from :meth:`tokenize`."""
        ...


class ServeTokenizer:
    """The model's Rust tokenizer, cutting at ``max_seq_length``, that also reports the uncut lengths.

    A private copy, because the model's own one is stateful (transformers switches its truncation on
    per call). The uncut length comes free for texts that fit; a text that was cut (it has
    ``overflowing`` parts) is counted again without truncation, which only over-long inputs pay.
    """

    def __init__(self, tokenizer_json: str, *, max_seq_length: int, lower_case: bool) -> None:
        from tokenizers import Tokenizer

        self._cutting = Tokenizer.from_str(tokenizer_json)
        self._cutting.no_padding()
        self._cutting.enable_truncation(max_length=max_seq_length)
        self._counting = Tokenizer.from_str(tokenizer_json)
        self._counting.no_padding()
        self._counting.no_truncation()
        self._lower = lower_case

    def __call__(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        texts = [text.lower() for text in texts] if self._lower else list(texts)
        encodings = self._cutting.encode_batch(texts, add_special_tokens=True)
        ids = [encoding.ids for encoding in encodings]
        lengths = [len(row) for row in ids]
        for index, encoding in enumerate(encodings):
            if encoding.overflowing:
                lengths[index] = len(self._counting.encode(texts[index], add_special_tokens=True).ids)
        return ids, lengths

    def tokens(self, texts: Sequence[str], *, add_special_tokens: bool) -> list[list[dict[str, Any]]]:
        """Every token of each text, uncut, as text-embeddings-inference's ``/tokenize`` lists them: id, its
        piece of the text (the token itself for a special one), and its character span (None if special)."""
        lowered = [text.lower() for text in texts] if self._lower else list(texts)
        result = []
        for text, seen, encoding in zip(texts, lowered, self._counting.encode_batch(
                lowered, add_special_tokens=add_special_tokens), strict=True):
            source = text if len(text) == len(seen) else seen  # lower() may change a length: slice what was read
            result.append([
                {"id": token_id, "text": token, "special": True, "start": None, "stop": None} if special else
                {"id": token_id, "text": source[start:stop], "special": False, "start": start, "stop": stop}
                for token_id, token, special, (start, stop) in zip(
                    encoding.ids, encoding.tokens, encoding.special_tokens_mask, encoding.offsets, strict=True)])
        return result

    def decode(self, ids: Sequence[Sequence[int]], *, skip_special_tokens: bool) -> list[str]:
        """Each list of ids back to text; ids outside the vocabulary are refused with a ``ValueError``."""
        size = self._counting.get_vocab_size(with_added_tokens=True)
        for row, sequence in enumerate(ids):
            wrong = next((token for token in sequence if not 0 <= token < size), None)
            if wrong is not None:
                raise ValueError(f"ids[{row}] holds {wrong}, outside the model's vocabulary of {size} ids")
        return self._counting.decode_batch([list(sequence) for sequence in ids],
                                           skip_special_tokens=skip_special_tokens)


class TorchEngine:
    """A :class:`~sentsim.encoders.bi_encoder.SentenceTransformer` behind the engine protocol.

    Embedding goes through :func:`sentsim.inference.encode.encode_token_ids`, the function behind
    ``model.encode`` and ``sentsim encode``, so served vectors equal offline ones in the same precision.
    That is bf16 wherever the CPU has it natively (``encode(..., dtype="bf16")``), for every batch: offline
    ``dtype="auto"`` runs a small single batch in fp32 instead, which moves a vector by about 1e-3. In
    bf16 a vector can also move by about 1e-3 with the batch it shares (padding changes the products'
    blocking); fp32 keeps both to rounding.
    """

    run_overhead = TORCH_RUN_OVERHEAD_TOKENS

    def __init__(self, model: SentenceTransformer, *, name: str, batch_size: int = 32,
                 parallel_runs: int = 1) -> None:
        from sentsim.inference.forward import resolve_precision

        model.eval()  # once, here: concurrent forwards must not race on switching train/eval back and forth
        self.model = model
        #: Resolved once: every forward runs in it, however small (the traced graph is recorded in it).
        self.precision = resolve_precision("auto", model.device)
        #: What ``/info`` reports as ``model_dtype``, in text-embeddings-inference's words.
        self.dtype = "bfloat16" if self.precision == "bf16" else "float32"
        self.name = name
        self.batch_size = batch_size
        self.parallel_runs = parallel_runs
        self.calibration = model.calibration
        self.prompts, self.default_prompt_name = model.prompts, model.default_prompt_name
        self.include_prompt = model.pooling is None or model.pooling.include_prompt
        self.tokenize = ServeTokenizer(model.transformer.tokenizer.backend_tokenizer.to_str(),
                                       max_seq_length=model.max_seq_length,
                                       lower_case=model.transformer.do_lower_case)

    @property
    def max_seq_length(self) -> int:
        return self.model.max_seq_length

    @property
    def embedding_dimension(self) -> int:
        return self.model.embedding_dimension

    def embed_tokens(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        from sentsim.inference.encode import encode_token_ids

        return encode_token_ids(self.model, ids, batch_size=self.batch_size, dtype=self.precision,
                                show_progress=False, run_overhead=self.run_overhead).numpy()


def model_name(model: str | Path) -> str:
    """The id clients send as ``model``: the folder or hub name as given, without a trailing slash."""
    return str(model).rstrip("/") or str(model)


def load_engine(model: str | Path, *, backend: str = "torch", batch_size: int = 32, name: str | None = None,
                runners: int | None = None) -> Engine:
    """Loads ``model`` (a folder or hub name) for serving with the given backend; ``name`` is its served id.

    ``runners``: forwards the queue runs at once (default one per physical core); each gets an equal
    share of the cores as its intra-op threads, so together they never oversubscribe the CPU. With
    torch that share is set process-wide (``torch.set_num_threads``): a serving process owns its cores.
    """
    from sentsim.environment import physical_cores

    name = name or model_name(model)
    cores = physical_cores()
    runners = cores if runners is None else runners
    if runners < 1:
        raise ConfigError(f"runners must be at least 1, got {runners}")
    threads = max(1, cores // runners)
    if backend == "torch":
        import torch

        from sentsim.encoders.bi_encoder import SentenceTransformer

        loaded = _serving_model(SentenceTransformer(model), reload=lambda: SentenceTransformer(model))
        if runners > 1:
            torch.set_num_threads(threads)
        return TorchEngine(loaded, name=name, batch_size=batch_size, parallel_runs=runners)
    if backend == "onnx":
        from sentsim.inference.onnx_backend import OnnxSentenceEncoder

        return OnnxEngine(OnnxSentenceEncoder(model, threads=threads), name=name, batch_size=batch_size,
                          parallel_runs=runners)
    raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


def _serving_model(model: SentenceTransformer, *, reload: Callable[[], SentenceTransformer]) -> SentenceTransformer:
    """``model`` made fast for many small forwards, with the same vectors as offline ``encode``.

    Two steps, each checked and each skipped when its check fails:

    - bf16 linear weights where it runs under bf16 autocast (native bf16): re-casting the fp32 weights
      was half of a small forward (see ``cast_linear_weights``). A probe sentence is embedded before
      and after; should it differ, or the cast model fail (a model whose code does not go through
      autocast), a fresh fp32 copy from ``reload`` is served instead.
    - the transformer traced as a graph (``sentsim.inference.graph``), used only if it reproduces the
      eager forward bit for bit on probe batches.
    """
    import torch

    from sentsim.inference.encode import encode_token_ids
    from sentsim.inference.forward import cast_linear_weights, resolve_precision
    from sentsim.inference.graph import trace_transformer

    precision = resolve_precision("auto", model.device)
    if precision == "bf16":
        probe = [model.token_ids(["A probe sentence, embedded before and after the cast."])[0]]
        before = encode_token_ids(model, probe, dtype="bf16", show_progress=False)
        try:
            cast_linear_weights(model, torch.bfloat16)
            after = encode_token_ids(model, probe, dtype="bf16", show_progress=False)
        except Exception:  # any failure means: serve the plain model
            logger.warning("serving fp32 weights: the model does not run with bf16 linear weights", exc_info=True)
            model = reload()
        else:
            if not torch.allclose(before, after, rtol=0, atol=1e-6):
                logger.warning("serving fp32 weights: bf16 linear weights changed the embeddings by up to %.2g",
                               (before - after).abs().max().item())
                model = reload()
    trace_transformer(model, precision=precision)
    return model


class OnnxEngine:
    """An :class:`~sentsim.inference.onnx_backend.OnnxSentenceEncoder` (no torch) behind the engine protocol.

    ``parallel_runs``: forwards run at once (an ONNX Runtime session may be run from several threads);
    :func:`load_engine` sizes the session's threads to an equal share of the cores for each.
    """

    run_overhead = ONNX_RUN_OVERHEAD_TOKENS

    def __init__(self, encoder: OnnxSentenceEncoder, *, name: str, batch_size: int = 32,
                 parallel_runs: int = 1) -> None:
        self.encoder = encoder
        self.name = name
        self.batch_size = batch_size
        self.parallel_runs = parallel_runs
        self.calibration = encoder.calibration
        self.prompts, self.default_prompt_name = encoder.prompts, encoder.default_prompt_name
        self.include_prompt = encoder.config.include_prompt
        self.max_seq_length = encoder.max_seq_length
        self.embedding_dimension = encoder.embedding_dimension  # probes the graph once, here, not mid-request
        #: ``/info``'s ``model_dtype``: sentsim's quantised exports carry "int8" in their file names.
        self.dtype = "int8" if "int8" in Path(encoder.file).name else "float32"
        self.tokenize = ServeTokenizer(encoder.tokenizer.to_str(), max_seq_length=encoder.max_seq_length,
                                       lower_case=encoder.config.do_lower_case)

    def embed_tokens(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.encoder.embed_token_ids(ids, batch_size=self.batch_size, show_progress=False,
                                            run_overhead=self.run_overhead)
