"""sentence-transformers' multi-process encoding: ``start_multi_process_pool``, ``encode(pool=...)`` and friends.

Code written for sentence-transformers spreads a large corpus over several GPUs, or CPU processes,
with a pool of worker processes (``pool = model.start_multi_process_pool()``, ``model.encode(texts,
pool=pool)`` or ``device=["cuda:0", "cuda:1"]``, ``model.stop_multi_process_pool(pool)``). The same
calls work here, for both backends: each worker is a spawned process holding a copy of the model
(torch's tensors travel in shared memory), texts go out in chunks and come back in order. The
pool is the same ``{"input", "output", "processes"}`` dict. Unlike theirs, CPU workers split the
cores between them (``torch.set_num_threads`` / the ONNX encoder's ``threads``), so four workers on
two cores do not fight over them; on the CPU one process already uses every core, so a pool pays
mostly across GPUs.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import queue as queues
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sentsim.environment import physical_cores, torch_installed
from sentsim.errors import ConfigError, UnusedArgumentError

#: The pool dict sentence-transformers' code holds and passes back: two queues and the processes.
Pool = dict[str, Any]
_calls = itertools.count(1)


def _multiprocessing() -> Any:
    """torch's multiprocessing (tensors shared, not copied) where torch is installed, else the standard one."""
    if torch_installed():
        import torch.multiprocessing as multiprocessing
    else:
        import multiprocessing
    return multiprocessing.get_context("spawn")


def default_devices() -> list[str]:
    """Every CUDA device where there are any, else one CPU worker per physical core (at most 4)."""
    if torch_installed():
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count():
            return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return ["cpu"] * max(1, min(4, physical_cores()))


def start_pool(model: Any, target_devices: Sequence[str] | None = None) -> Pool:
    """Starts one worker process per entry of ``target_devices`` (see :func:`default_devices`)."""
    devices = [str(device) for device in (target_devices if target_devices is not None else default_devices())]
    if not devices:
        raise ConfigError("target_devices is empty: a pool needs at least one device")
    if getattr(model, "backend", None) == "onnx" and any(device != "cpu" for device in devices):
        raise ConfigError(f"the onnx backend runs on the CPU; devices {devices} need the torch backend")
    cpu_workers = sum(device == "cpu" for device in devices)
    threads = max(1, physical_cores() // cpu_workers) if cpu_workers else None
    context = _multiprocessing()
    inputs, outputs = context.Queue(), context.Queue()
    processes = []
    for device in devices:
        process = context.Process(target=_work, args=(model, device, threads if device == "cpu" else None,
                                                      inputs, outputs), daemon=True)
        process.start()
        processes.append(process)
    return {"input": inputs, "output": outputs, "processes": processes}


def stop_pool(pool: Pool) -> None:
    """Ends the workers and closes the queues (sentence-transformers' ``stop_multi_process_pool``)."""
    processes = pool.get("processes", [])
    for _ in processes:  # asked to finish first, so they exit cleanly and free what they hold
        pool["input"].put(None)
    for process in processes:
        process.join(5)
        if process.is_alive():  # busy or stuck: ended the hard way
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    for name in ("input", "output"):
        if name in pool:
            pool.pop(name).close()  # dropped, so their semaphores are freed now rather than reported at exit
    pool["processes"] = []


def pooled_encode(model: Any, inputs: Any, *, sentences: Any, pool: Pool | None, devices: Sequence[str] | None,
                  chunk_size: int | None, convert_to_numpy: bool, convert_to_tensor: bool,
                  options: dict[str, Any]) -> Any:
    """``encode(..., pool=...)`` or ``encode(..., device=[...])``: the texts through a pool, returned as
    ``encode`` returns them (one string: one row)."""
    from sentsim.inference.encode_args import check_encode_options, returned, tensor_maker, texts_to_encode
    from sentsim.inference.quantize import quantize_embeddings

    precision = check_encode_options(output_value=options.get("output_value"), precision=options.get("precision"),
                                     batch_size=options.get("batch_size"))
    single, texts = texts_to_encode(inputs, sentences)
    # The workers return floats; int8/binary ranges are taken over all texts at once, as without a pool.
    embeddings = encode_with_pool(model, texts, pool=pool, devices=devices, chunk_size=chunk_size,
                                  options={**options, "precision": "float32"},
                                  small_call=_one_small_batch(model, texts, options))
    if len(texts) and precision != "float32":
        embeddings = quantize_embeddings(embeddings, precision=precision)
    result = returned(embeddings, count=len(texts), convert_to_tensor=convert_to_tensor,
                      convert_to_numpy=convert_to_numpy, as_tensor=tensor_maker())
    return result[0] if single else result


def _is_torch_model(model: Any) -> bool:
    """A torch encoder whose ``auto`` is still open (one with bf16 linears, or an ONNX one, has no choice)."""
    if not torch_installed():
        return False
    import torch

    return isinstance(model, torch.nn.Module) and getattr(model, "linear_weights_dtype", None) is None


def _one_small_batch(model: Any, texts: list[str], options: dict[str, Any]) -> bool:
    """Whether ``encode`` would run this whole call as one small batch, in fp32 under ``auto`` (see
    ``forward.one_small_batch``). Only a call of at most one batch of texts is tokenised to tell."""
    if options.get("dtype") != "auto" or not _is_torch_model(model) or not 0 < len(texts) <= options["batch_size"]:
        return False
    from sentsim.inference.forward import one_small_batch
    from sentsim.inference.prompts import resolve_prompt

    prompt = resolve_prompt(model.prompts, model.default_prompt_name, options.get("prompt"), options.get("prompt_name"))
    ids = model.token_ids([prompt + text for text in texts] if prompt else texts)
    return one_small_batch([len(row) for row in ids], batches=1)


def _settled_dtype(model: Any, options: dict[str, Any], *, small_call: bool) -> dict[str, Any]:
    """A worker's options with ``auto`` decided for the whole call: a chunk of a large call would
    otherwise run in fp32 where ``encode`` of all the texts runs in bf16 (or the other way round)."""
    if options.get("dtype") != "auto" or not _is_torch_model(model):
        return options
    from sentsim.inference.forward import resolve_precision

    return {**options, "dtype": "fp32" if small_call else resolve_precision("auto", model.device)}


def encode_with_pool(model: Any, texts: list[str], *, pool: Pool | None, devices: Sequence[str] | None,
                     chunk_size: int | None, options: dict[str, Any], small_call: bool = False) -> np.ndarray:
    """``model.encode(texts, **options)`` run by the pool's workers, chunk by chunk, as one array in order.

    ``pool`` None with ``devices`` starts a pool for this call only and stops it afterwards. Only
    sentence embeddings go through a pool (as numpy arrays); the caller converts the result.
    ``small_call``: the whole call is one small batch (``_one_small_batch``), so ``auto`` means fp32.
    """
    if options.get("output_value", "sentence_embedding") != "sentence_embedding":
        raise ConfigError("a multi-process pool returns sentence embeddings only; encode token embeddings "
                          "(output_value) without pool or a device list")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not texts:
        return np.array([])
    own = pool is None
    if own:
        pool = start_pool(model, devices)
    try:
        return _run_chunks(pool, texts, chunk_size=chunk_size, options=options, small_call=small_call)
    finally:
        if own:
            stop_pool(pool)


def _run_chunks(pool: Pool, texts: list[str], *, chunk_size: int | None, options: dict[str, Any],
                small_call: bool) -> np.ndarray:
    workers = len(pool["processes"])
    if chunk_size is None:  # sentence-transformers' default: ~10 chunks per worker, at most 5,000 texts
        chunk_size = max(1, min(math.ceil(len(texts) / workers / 10), 5000))
    call = next(_calls)  # results of an earlier, interrupted call may still arrive: they are told apart
    starts = range(0, len(texts), chunk_size)
    for number, start in enumerate(starts):
        pool["input"].put((call, number, texts[start : start + chunk_size], options, small_call))
    results: dict[int, np.ndarray] = {}
    while len(results) < len(starts):
        try:
            got_call, number, embeddings, error = pool["output"].get(timeout=1.0)
        except queues.Empty:
            dead = [process for process in pool["processes"] if not process.is_alive()]
            if dead:
                raise RuntimeError(f"an encode pool process ended (exit code {dead[0].exitcode}) before its "
                                   "chunk was done; stop this pool and start a new one") from None
            continue
        if got_call != call:
            continue
        if error is not None:
            raise error
        results[number] = embeddings
    return np.concatenate([results[number] for number in range(len(starts))]) if starts else np.array([])


def _work(model: Any, device: str, threads: int | None, inputs: Any, outputs: Any) -> None:
    """A worker: moves the model to its device, then encodes chunks until the pool ends it."""
    if threads is not None:
        if torch_installed():
            import torch

            torch.set_num_threads(threads)
        if hasattr(model, "use_threads"):
            model.use_threads(threads)
    if device != "cpu":
        model.to(device)
    while True:
        item = inputs.get()
        if item is None:  # the pool is being stopped
            return
        call, number, texts, options, small_call = item
        try:
            embeddings = model.encode(texts, convert_to_numpy=True, convert_to_tensor=False, show_progress_bar=False,
                                      **_settled_dtype(model, options, small_call=small_call))
            outputs.put((call, number, np.asarray(embeddings), None))
        except Exception as error:  # sent back to the caller, who raises it
            try:
                outputs.put((call, number, None, error))
            except Exception:  # an exception that cannot be pickled: send its text
                outputs.put((call, number, None, RuntimeError(f"{type(error).__name__}: {error}")))


class PoolCalls:
    """sentence-transformers' pool methods, mixed into both encoders."""

    def start_multi_process_pool(self, target_devices: Sequence[str] | None = None) -> Pool:
        """Worker processes for ``encode(..., pool=pool)``: one per device (default: every GPU, or CPU workers
        sharing the cores)."""
        return start_pool(self, target_devices)

    @staticmethod
    def stop_multi_process_pool(pool: Pool) -> None:
        stop_pool(pool)

    def encode_multi_process(self, sentences: Sequence[str], pool: Pool, prompt_name: str | None = None,
                             prompt: str | None = None, batch_size: int = 32, chunk_size: int | None = None,
                             show_progress_bar: bool | None = None, precision: str = "float32",
                             normalize_embeddings: bool = False, truncate_dim: int | None = None) -> np.ndarray:
        """sentence-transformers' older spelling of ``encode(sentences, pool=pool)``."""
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,  # type: ignore[attr-defined]
                           show_progress_bar=show_progress_bar, precision=precision,
                           normalize_embeddings=normalize_embeddings, truncate_dim=truncate_dim, pool=pool,
                           chunk_size=chunk_size)

    def get_model_kwargs(self) -> list[str]:
        """The extra ``encode`` keyword arguments the model's forward takes: none (sentence-transformers' call)."""
        return []


#: ``encode`` arguments a pool's workers receive as they are (the rest decide where and how it returns).
WORKER_OPTIONS = ("prompt_name", "prompt", "batch_size", "output_value", "precision", "normalize_embeddings",
                  "truncate_dim", "dtype")


def pool_aware(encode: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps an encoder's ``encode``: refuses keywords it does not use, and sends a call with ``pool=`` or
    a list of devices through the pool; every other call runs ``encode`` itself, unchanged."""
    signature = inspect.signature(encode)

    @functools.wraps(encode)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        refuse_extra_kwargs(bound.arguments.get("kwargs", {}))
        pool, device = bound.arguments.get("pool"), bound.arguments.get("device")
        if pool is None and not isinstance(device, (list, tuple)):
            return encode(self, *args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        return pooled_encode(self, given["inputs"], sentences=given["sentences"], pool=pool, devices=device,
                             chunk_size=given["chunk_size"], convert_to_numpy=given["convert_to_numpy"],
                             convert_to_tensor=given["convert_to_tensor"],
                             options={name: given[name] for name in WORKER_OPTIONS})

    return wrapper


def refuse_extra_kwargs(kwargs: dict[str, Any]) -> None:
    """ValueError (as sentence-transformers raises; also a TypeError) for ``encode`` keyword arguments the
    model does not use."""
    if kwargs:
        raise UnusedArgumentError(f"encode() was called with keyword arguments this model does not use: "
                                  f"{sorted(kwargs)}; sentsim models take no extra forward arguments "
                                  "(get_model_kwargs() is empty)")
