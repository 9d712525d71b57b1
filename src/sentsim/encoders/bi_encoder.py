"""The sentence encoder: a pipeline of modules (transformer → pooling → optional normalize)."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from sentsim import __version__
from sentsim.errors import ConfigError, ModelLoadError
from sentsim.models import Normalize, Pooling, Transformer
from sentsim.persistence.hub import DEFAULT_MODEL, resolve_model_path
from sentsim.persistence.layout import CALIBRATION_FILE, load_modules, save_modules

if TYPE_CHECKING:
    from sentsim.inference.calibration import IsotonicCalibration


class SentenceTransformer(nn.Sequential):
    """A siamese sentence encoder; the same network embeds both sentences of a pair.

    The class stays small on purpose: encoding lives in ``inference``, saving in ``persistence``,
    training in ``training`` and reports in ``reporting``; the methods here only delegate, so the
    classic sentence-transformers calls (``encode``, ``save``, ``fit``) keep working.
    """

    def __new__(cls, *args: Any, backend: str = "torch", **kwargs: Any) -> Any:
        """``backend="onnx"`` returns the torch-free ``OnnxSentenceEncoder`` of a folder from ``sentsim export``
        (sentence-transformers' ``model_kwargs={"file_name": ...}`` picks the ONNX file; default: this CPU's)."""
        if backend == "onnx":
            from sentsim.inference.onnx_backend import onnx_encoder_from_arguments

            return onnx_encoder_from_arguments(*args, **kwargs)
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
    ) -> None:
        calibration = None
        if modules is None:
            folder = resolve_model_path(model_name_or_path or DEFAULT_MODEL)
            modules = load_modules(folder, allow_pickle=allow_pickle)
            from sentsim.inference.calibration import IsotonicCalibration

            calibration = IsotonicCalibration.load(folder)
        if not modules or not isinstance(modules[0], Transformer):
            raise ModelLoadError("a sentsim model starts with a Transformer module")
        super().__init__(*modules)
        self.name_or_path = str(model_name_or_path or "")
        self.calibration: IsotonicCalibration | None = calibration
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
        folder = resolve_model_path(model_name_or_path)
        transformer = Transformer.load(folder, allow_pickle=allow_pickle) if (folder / "modules.json").is_file() \
            else Transformer(folder, local_files_only=True, allow_pickle=allow_pickle)
        if max_seq_length is not None:
            transformer.max_seq_length = max_seq_length
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
        pooling = self.pooling
        return pooling.output_dimension if pooling else self.transformer.embedding_dimension

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for ``embedding_dimension``."""
        return self.embedding_dimension

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return self.transformer.tokenize(list(texts))

    def collate(self, ids: list[list[int]], *, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        return self.transformer.collate(ids, pad_to_multiple_of=pad_to_multiple_of)

    # -- use ------------------------------------------------------------------------------------
    def encode(self, sentences: str | Sequence[str], **options: Any) -> np.ndarray | torch.Tensor:
        """Embeds sentences; see ``sentsim.inference.encode.encode.encode`` for the options."""
        from sentsim.inference.encode import encode

        return encode(self, sentences, **options)

    def similarity(
        self,
        sentences_a: str | Sequence[str],
        sentences_b: str | Sequence[str],
        *,
        scale: Literal["cosine", "sts"] = "cosine",
        batch_size: int = 32,
    ) -> np.ndarray | float:
        """Cosine similarity of aligned pairs, or with ``scale="sts"`` the calibrated 0–5 score.

        The STS scale needs a calibration (fitted after ``sentsim train`` or by ``sentsim calibrate``):
        raw cosines of a trained model bunch up in a narrow band, while people read 0–5.
        """
        single = isinstance(sentences_a, str) and isinstance(sentences_b, str)
        first = [sentences_a] if isinstance(sentences_a, str) else list(sentences_a)
        second = [sentences_b] if isinstance(sentences_b, str) else list(sentences_b)
        if len(first) != len(second):
            raise ConfigError(f"similarity needs aligned pairs: {len(first)} vs {len(second)} sentences")
        from sentsim.inference.encode import encode_pairs

        embeddings_a, embeddings_b = encode_pairs(self, first, second, batch_size=batch_size, normalize=True)
        cosines = np.clip(np.sum(embeddings_a.astype(np.float64) * embeddings_b, axis=1), -1.0, 1.0)
        if scale == "sts":
            if self.calibration is None:
                raise ConfigError(
                    "this model has no calibration for the 0–5 scale; run `sentsim calibrate MODEL --data ...`"
                )
            scores = self.calibration.predict(cosines)
        elif scale == "cosine":
            scores = cosines
        else:
            raise ConfigError(f"scale must be 'cosine' or 'sts', not {scale!r}")
        return float(scores[0]) if single else scores

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, *, model_card: str | None = None) -> Path:
        """Writes the model in the sentence-transformers layout, atomically."""
        extra = {}
        if model_card is not None:
            extra["README.md"] = model_card
        if self.calibration is not None:
            extra[CALIBRATION_FILE] = json.dumps(self.calibration.to_dict(), indent=2) + "\n"
        return save_modules(list(self), path, extra_files=extra, versions=_versions())

    # -- training (the classic sentence-transformers entry point) -------------------------------
    def fit(self, *args: Any, **kwargs: Any) -> None:
        """The classic ``model.fit(train_objectives=[(dataloader, loss)], ...)``; runs sentsim's loop."""
        from sentsim.training.compat import fit

        fit(self, *args, **kwargs)


def _versions() -> dict[str, str]:
    import transformers

    return {"sentsim": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__,
            "python": platform.python_version()}
