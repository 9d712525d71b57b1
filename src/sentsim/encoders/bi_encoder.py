"""The sentence encoder: a pipeline of modules (transformer → pooling → optional normalize)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sentsim import __version__
from sentsim.errors import ConfigError, ModelLoadError
from sentsim.inference.calibration import CALIBRATION_FILE
from sentsim.inference.process_pool import PoolCalls, pool_aware
from sentsim.inference.prompts import PromptShortcuts, prompt_settings
from sentsim.inference.similarity_any import SimilarityCalls
from sentsim.inference.st_calls import StCalls
from sentsim.models import Dense, Normalize, Pooling, Transformer
from sentsim.persistence.hub import DEFAULT_MODEL, resolve_model_path
from sentsim.persistence.layout import load_modules, load_transformer, read_card, save_modules
from sentsim.persistence.model_config import read_model_config

if TYPE_CHECKING:
    from sentsim.inference.calibration import IsotonicCalibration


class SentenceTransformer(PromptShortcuts, SimilarityCalls, StCalls, PoolCalls, nn.Sequential):
    """A siamese sentence encoder; the same network embeds both sentences of a pair.

    The class stays small on purpose: encoding lives in ``inference``, saving in ``persistence``,
    training in ``training`` and reports in ``reporting``; the methods here only delegate, so the
    classic sentence-transformers calls (``encode``, ``save``, ``fit``) keep working.
    """

    def __new__(cls, *args: Any, backend: str = "torch", **kwargs: Any) -> Any:
        """``backend="onnx"`` returns the torch-free ``OnnxSentenceEncoder`` of a folder from ``sentsim export``
        (sentence-transformers' ``model_kwargs={"file_name": ...}`` picks the ONNX file; default: this CPU's).
        A folder without ONNX files is exported on the fly, as sentence-transformers does (``onnx_loading``)."""
        if backend == "onnx":
            from sentsim.inference.onnx_loading import onnx_encoder_from_arguments

            return onnx_encoder_from_arguments(*args, exporter=export_for_session, **kwargs)
        if backend != "torch":
            raise ConfigError(f"backend must be 'torch' or 'onnx', not {backend!r}")
        return super().__new__(cls)

    def __init__(
        self,
        model_name_or_path: str | Path | None = None,
        *,
        modules: Sequence[nn.Module] | None = None,
        device: str | torch.device | None = None,
        backend: str = "torch",  # "onnx" is handled by __new__ (returns an OnnxSentenceEncoder instead)
        allow_pickle: bool = False,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        truncate_dim: int | None = None,
        cache_folder: str | Path | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        use_auth_token: str | bool | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        model_card_data: Any = None,
    ) -> None:
        """sentence-transformers' constructor: the hub options (``cache_folder``, ``revision``, ``token``,
        ``local_files_only``) apply to a download; ``model_card_data`` (theirs, a mapping or sentsim's
        :class:`ModelCardData`) feeds the card ``save`` writes; options that would change the network
        (``trust_remote_code=True``, ``model_kwargs``, ``tokenizer_kwargs``,
        ``config_kwargs``) are refused by name (``check_loading_options``) rather than dropped."""
        check_loading_options(trust_remote_code=trust_remote_code, model_kwargs=model_kwargs,
                              tokenizer_kwargs=tokenizer_kwargs, config_kwargs=config_kwargs)
        calibration = None
        stored: dict[str, Any] = {}
        self_card: str | None = None
        hub_name: str | None = None  # the hub id the weights came from, not a local folder
        if modules is None:
            folder = resolve_model_path(model_name_or_path or DEFAULT_MODEL, cache_folder=cache_folder,
                                        revision=revision, token=token if token is not None else use_auth_token,
                                        local_files_only=local_files_only)
            modules = load_modules(folder, allow_pickle=allow_pickle)
            stored = read_model_config(folder)
            from sentsim.inference.calibration import IsotonicCalibration

            calibration = IsotonicCalibration.load(folder)
            self_card = read_card(folder)
            name = str(model_name_or_path or DEFAULT_MODEL)
            hub_name = None if Path(name).expanduser().exists() else name  # resolved from the hub or bundled
        if not modules or not isinstance(modules[0], Transformer):
            raise ModelLoadError("a sentsim model starts with a Transformer module")
        super().__init__(*modules)
        self.name_or_path = str(model_name_or_path or "")
        self.calibration: IsotonicCalibration | None = calibration
        self.model_card_data = model_card_data
        if hub_name is not None:
            self.model_card_data.set_base_model(hub_name, revision)
        #: The card the model was loaded with (sentence-transformers' name), kept by ``save`` until training.
        self._model_card_text = self_card
        # sentence-transformers' model options: given ones win over those saved with the model.
        self.prompts, self.default_prompt_name = prompt_settings(stored, prompts, default_prompt_name)
        self.similarity_fn_name = similarity_fn_name or stored.get("similarity_fn_name") or "cosine"
        self.truncate_dim = truncate_dim if truncate_dim is not None else stored.get("truncate_dim")
        if device is not None:
            self.to(device)

    @classmethod
    def from_transformer(
        cls,
        model_name_or_path: str | Path,
        *,
        pooling: str | Sequence[str] = "mean",
        normalize: bool = False,
        max_seq_length: int | None = None,
        allow_pickle: bool = False,
    ) -> SentenceTransformer:
        """The "from scratch" recipe: a pretrained transformer's weights plus a new pooling layer.

        Given a sentence-transformers folder, only its transformer is kept (its pooling is replaced).
        """
        transformer = load_transformer(resolve_model_path(model_name_or_path), max_seq_length=max_seq_length,
                                       allow_pickle=allow_pickle)
        modules: list[nn.Module] = [transformer, Pooling(transformer.embedding_dimension, modes=pooling)]
        if normalize:
            modules.append(Normalize())
        model = cls(modules=modules)
        model.name_or_path = str(model_name_or_path)
        return model

    # -- the pieces ---------------------------------------------------------------------------
    @property
    def transformer(self) -> Transformer:
        return self[0]

    @property
    def pooling(self) -> Pooling | None:
        return next((module for module in self if isinstance(module, Pooling)), None)

    def get_backend(self) -> str:
        """sentence-transformers' call: which runtime embeds (``"torch"`` here; the ONNX encoder says ``"onnx"``)."""
        return "torch"

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def max_seq_length(self) -> int:
        return self.transformer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        # The transformer checks the range (2 to its position limit) and raises ConfigError.
        self.transformer.max_seq_length = value

    @property
    def embedding_dimension(self) -> int:
        dense = [module for module in self if isinstance(module, Dense)]
        if dense:  # a Dense after pooling sets the size (distiluse: 768 pooled → 512)
            return dense[-1].out_features
        pooling = self.pooling
        return pooling.output_dimension if pooling else self.transformer.embedding_dimension

    @property
    def tokenizer(self) -> Any:
        return self.transformer.tokenizer

    @property
    def transformers_model(self) -> Any:
        """The transformers model inside (sentence-transformers' ``transformers_model``)."""
        return self.transformer.auto_model

    @property
    def config(self) -> Any:
        """The transformers config of that model (integrations read ``model.config.hidden_size``)."""
        return self.transformer.auto_model.config

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters (fp32 as stored; bf16 runs are autocast, not a cast of the model)."""
        return next(self.parameters()).dtype

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Unpadded token ids per text (sentsim's own batching pads them per batch)."""
        return self.transformer.tokenize(list(texts))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """sentence-transformers' ``tokenize``: the padded model inputs (``input_ids``, ``attention_mask`` …)."""
        texts = [text.lower() for text in texts] if self.transformer.do_lower_case else list(texts)
        if not texts:
            return {}  # as sentence-transformers answers an empty list
        return dict(self.tokenizer(texts, padding=True, truncation="longest_first", return_tensors="pt",
                                   max_length=self.max_seq_length))

    def collate(self, ids: list[list[int]], *, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        return self.transformer.collate(ids, pad_to_multiple_of=pad_to_multiple_of)

    # -- use ------------------------------------------------------------------------------------
    @pool_aware
    def encode(self, inputs: str | Sequence[str] | None = None, prompt_name: str | None = None,
               prompt: str | None = None, batch_size: int = 32, show_progress_bar: bool | None = None,
               output_value: str | None = "sentence_embedding", precision: str = "float32",
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, device: str | None = None,
               normalize_embeddings: bool = False, truncate_dim: int | None = None,
               pool: dict[str, Any] | None = None, chunk_size: int | None = None, *,
               sentences: str | Sequence[str] | None = None, dtype: str = "auto", **kwargs: Any) -> Any:
        """Embeds texts with sentence-transformers' arguments and return types.

        ``precision`` quantises the output (float32, int8, uint8, binary, ubinary); ``dtype`` is the
        compute type of the forward pass (``auto`` = bf16 where the hardware runs it natively, else
        fp32; ``fp32`` for exact results). One string gives a 1-D result, a list a 2-D one. ``pool``
        (from ``start_multi_process_pool``) or a list of devices encodes in worker processes.
        """
        from sentsim.inference.encode_api import encode_compatible
        from sentsim.inference.prompts import resolve_prompt

        if device is not None:
            self.to(device)
        return encode_compatible(
            self, inputs, sentences=sentences,
            prompt=resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name),
            batch_size=batch_size, show_progress_bar=show_progress_bar, output_value=output_value,
            precision=precision, convert_to_numpy=convert_to_numpy, convert_to_tensor=convert_to_tensor,
            normalize_embeddings=normalize_embeddings, dtype=dtype,
            truncate_dim=truncate_dim if truncate_dim is not None else self.truncate_dim)

    def pair_cosine(self, sentences_a: str | Sequence[str], sentences_b: str | Sequence[str], *,
                    batch_size: int = 32, dtype: str = "auto") -> np.ndarray | float:
        """Cosine of each aligned text pair (sentsim's extra; one float for two strings)."""
        from sentsim.inference.encode_api import aligned_pair_cosines

        return aligned_pair_cosines(self, sentences_a, sentences_b, batch_size=batch_size, dtype=dtype)

    def sts_score(self, sentences_a: str | Sequence[str], sentences_b: str | Sequence[str], *,
                  batch_size: int = 32, dtype: str = "auto") -> np.ndarray | float:
        """Calibrated 0–5 STS score of each aligned text pair (sentsim's extra).

        Needs a calibration (fitted after ``sentsim train`` or by ``sentsim calibrate``): raw cosines
        of a trained model bunch up in a narrow band, while people read 0–5.
        """
        from sentsim.inference.calibration import calibrated_scores, require_calibration

        calibration = require_calibration(self.calibration)
        cosines = self.pair_cosine(sentences_a, sentences_b, batch_size=batch_size, dtype=dtype)
        scores = calibrated_scores(cosines, calibration)
        return float(scores[0]) if isinstance(cosines, float) else scores

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, model_name: str | None = None, create_model_card: bool = True,
             train_datasets: list[str] | None = None, safe_serialization: bool = True, *,
             model_card: str | None = None) -> Path:
        """Writes the model in the sentence-transformers layout, atomically, beside whatever else ``path`` holds.

        sentence-transformers' arguments are accepted: ``create_model_card=False`` writes no README.md
        (``model_name`` and ``train_datasets`` only feed its card); weights are always safetensors.
        """
        extra = {}
        if create_model_card and model_card is None:
            model_card = self._card_text(path, model_name)
        if create_model_card:
            extra["README.md"] = model_card
        if self.calibration is not None:
            extra[CALIBRATION_FILE] = self.calibration.to_json()
        model_config = {"prompts": self.prompts, "default_prompt_name": self.default_prompt_name,
                        "similarity_fn_name": self.similarity_fn_name}
        if self.truncate_dim is not None:
            model_config["truncate_dim"] = self.truncate_dim
        return save_modules(list(self), path, extra_files=extra, versions=_versions(), model_config=model_config)

    def _card_text(self, path: str | Path, model_name: str | None) -> str:
        """The card the model was loaded with, if it has not been trained since (its calibration section
        and placeholder id brought up to date) and is not the minimal card, which is written anew from the
        model and its ``model_card_data``. As in sentence-transformers, a kept card is kept whole (their
        ``model_card_data`` only shapes new cards) and ``model_name`` becomes the hub id unless
        ``model_card_data`` has one."""
        from sentsim.persistence.card_text import restate_calibration, with_model_id
        from sentsim.persistence.minimal_card import MARKER, render_minimal_card

        if model_name and not self.model_card_data.model_id and not Path(model_name).exists():
            self.model_card_data.set_model_id(model_name)
        calibration = self.calibration
        if self._model_card_text and MARKER not in self._model_card_text:  # "" asks for a new card, as theirs
            card = restate_calibration(self._model_card_text, source=calibration and calibration.source,
                                       n_pairs=calibration.n_pairs if calibration is not None else None)
            return with_model_id(card, self.model_card_data.model_id)
        pooling = self.pooling
        return render_minimal_card(
            model_name=model_name or Path(path).name, base_model=self.name_or_path or "(unknown)",
            dimensions=self.embedding_dimension, max_seq_length=self.max_seq_length,
            pooling="+".join(pooling.modes) if pooling else "none", calibrated=calibration is not None,
            card=self.model_card_data)

    def train(self, mode: bool = True) -> SentenceTransformer:
        """``nn.Module.train``; switching to training also drops the card the model was loaded with, whose
        figures describe the weights before this training (``save`` then writes a new card)."""
        if mode:
            self._model_card_text = None
        return super().train(mode)

    def save_pretrained(self, path: str | Path, model_name: str | None = None, create_model_card: bool = True,
                        train_datasets: list[str] | None = None, safe_serialization: bool = True) -> Path:
        """sentence-transformers' name for ``save`` (weights are always safetensors)."""
        return self.save(path, model_name, create_model_card, train_datasets, safe_serialization)

    # -- training (the classic sentence-transformers entry point) -------------------------------
    def fit(self, *args: Any, **kwargs: Any) -> None:
        """The classic ``model.fit(train_objectives=[(dataloader, loss)], ...)``; runs sentsim's loop."""
        from sentsim.training.compat import fit

        fit(self, *args, **kwargs)


#: Exports made this session: (folder, its files' sizes and times) → the export, so loading the same
#: unchanged folder again reuses it instead of exporting (and keeping) one more copy.
_SESSION_EXPORTS: dict[tuple[Path, tuple], Path] = {}


def export_for_session(folder: Path) -> Path:
    """An fp32 ONNX export of ``folder`` in a temporary folder removed when the interpreter exits.

    For ``SentenceTransformer(folder, backend="onnx")`` on a folder without ONNX files, which
    sentence-transformers exports on the fly too. The one import of ``sentsim.export`` from this
    layer (declared in the import contracts): exporting traces this torch model.
    """
    import atexit
    import shutil
    import tempfile

    from sentsim.export.onnx_export import export_model

    folder = Path(folder).resolve()
    key = (folder, tuple(sorted((str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
                                for path in folder.rglob("*") if path.is_file())))
    if key in _SESSION_EXPORTS and _SESSION_EXPORTS[key].is_dir():
        return _SESSION_EXPORTS[key]
    scratch = Path(tempfile.mkdtemp(prefix="sentsim-onnx-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    _SESSION_EXPORTS[key] = export_model(folder, scratch / "model")
    return _SESSION_EXPORTS[key]


def _versions() -> dict[str, str]:
    import transformers

    return {"sentsim": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__,
            "python": platform.python_version()}


#: ``model_kwargs`` values that change nothing here: the weights are float32 and each call picks its
#: compute type (``encode(dtype=...)``); SDPA is transformers' default attention for these models, and
#: eager attention computes the same (4e-8 apart, benchmarks/README.md); ``low_cpu_mem_usage`` only
#: changes how transformers fills the weights while loading.
_NO_OP_MODEL_KWARGS = {"torch_dtype": ("auto", "float32", torch.float32), "dtype": ("auto", "float32", torch.float32),
                       "attn_implementation": ("sdpa", "eager"), "low_cpu_mem_usage": (True, False)}


def check_loading_options(*, trust_remote_code: bool, model_kwargs: dict[str, Any] | None,
                          tokenizer_kwargs: dict[str, Any] | None, config_kwargs: dict[str, Any] | None) -> None:
    """Refuses, by name, the loading options of sentence-transformers that sentsim does not honour.

    A silently dropped option would give a model other than the one asked for (another dtype, another
    tokenizer setting); a model's own code is never run, so ``trust_remote_code=True`` is refused too.
    """
    if trust_remote_code:
        raise ConfigError("trust_remote_code=True is not supported: sentsim runs standard transformers "
                          "architectures and never a model repository's own code")
    refused = [f"model_kwargs[{name!r}]={value!r}" for name, value in (model_kwargs or {}).items()
               if not any(value == allowed for allowed in _NO_OP_MODEL_KWARGS.get(name, ()))]
    refused += [f"tokenizer_kwargs[{name!r}]" for name in tokenizer_kwargs or {}]
    refused += [f"config_kwargs[{name!r}]" for name in config_kwargs or {}]
    if refused:
        raise ConfigError(f"{', '.join(refused)} not supported by the torch backend (sentsim's weights are float32 "
                          "and encode(dtype=...) picks the compute type; set max_seq_length on the model)")

