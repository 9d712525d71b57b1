"""sentence-transformers' smaller model calls, shared by both encoders (torch and ONNX).

Code written for sentence-transformers reads the output size with ``get_embedding_dimension`` (its
name since 6.0) or ``get_sentence_embedding_dimension``, shortens embeddings inside
``with model.truncate_embeddings(dim):`` (Matryoshka models), and runs its evaluators through
``model.evaluate(evaluator)``. As there, the dimension a model reports is what ``encode`` returns:
``truncate_dim`` included.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sentsim.persistence.card_data import ModelCardData


class StCalls:
    """Mixed into both encoders; they provide ``embedding_dimension``, ``truncate_dim`` and ``tokenize``."""

    embedding_dimension: int
    truncate_dim: int | None
    tokenize: Callable[[list[str]], dict[str, Any]]

    def preprocess(self, inputs: Any, prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """sentence-transformers 6's name for ``tokenize`` (which it deprecates), with its ``prompt`` put
        before each text. Its other keywords (``processing_kwargs``) would change what the model sees:
        refused by name."""
        if kwargs:
            raise ValueError(f"preprocess takes inputs and prompt only, not {', '.join(sorted(kwargs))}")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        return self.tokenize([prompt + text for text in texts] if prompt else texts)

    def get_embedding_dimension(self) -> int:
        """The size of what ``encode`` returns: the model's embedding size, or ``truncate_dim`` if smaller."""
        if self.truncate_dim is None:
            return self.embedding_dimension
        return min(self.embedding_dimension, self.truncate_dim)

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' older name for :meth:`get_embedding_dimension`."""
        return self.get_embedding_dimension()

    @contextmanager
    def truncate_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        """Inside the block ``encode`` returns the first ``truncate_dim`` dimensions (None: all of them)."""
        if truncate_dim is not None and (isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int)
                                         or truncate_dim < 1):
            raise ValueError(f"truncate_dim must be a positive int or None, not {truncate_dim!r}")
        original = self.truncate_dim
        self.truncate_dim = truncate_dim
        try:
            yield
        finally:
            self.truncate_dim = original

    @contextmanager
    def truncate_sentence_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        """sentence-transformers' older name for :meth:`truncate_embeddings`."""
        with self.truncate_embeddings(truncate_dim):
            yield

    @property
    def model_card_data(self) -> ModelCardData:
        """The card fields the user set and the figures sentence-transformers' evaluators recorded
        (:class:`~sentsim.persistence.card_data.ModelCardData`); ``save`` writes them into the card."""
        card = self.__dict__.get("_card_data")
        if card is None:
            card = self.__dict__["_card_data"] = ModelCardData()
        return card

    @model_card_data.setter
    def model_card_data(self, given: Any) -> None:
        self.__dict__["_card_data"] = ModelCardData.from_user(given)

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool | None = None,
                    safe_serialization: bool = True, commit_message: str | None = None,
                    local_model_path: str | None = None, exist_ok: bool = False, replace_model_card: bool = False,
                    train_datasets: list[str] | None = None, revision: str | None = None,
                    create_pr: bool = False) -> str:
        """sentence-transformers' ``push_to_hub``: saves the model (or uploads ``local_model_path``) to the
        hub repository ``repo_id`` and returns the commit URL. The repository is created first, so the
        card of the saved model loads its full id (the hub adds the user's namespace to a bare name);
        ``replace_model_card`` and ``train_datasets`` (which they ignore too) change nothing; weights are
        always safetensors."""
        import tempfile

        from sentsim.persistence.card_text import rewrite_card, with_model_id
        from sentsim.persistence.hub import upload_to_hub

        if not safe_serialization:
            raise ValueError("sentsim saves safetensors only: safe_serialization=False is not supported")
        message = commit_message or f"Add new {type(self).__name__} model (sentsim)"
        options = {"token": token, "private": private, "commit_message": message, "exist_ok": exist_ok,
                   "revision": revision, "create_pr": create_pr}
        if local_model_path:
            return upload_to_hub(Path(local_model_path), repo_id, **options)
        with tempfile.TemporaryDirectory(prefix="sentsim-push-") as folder:
            def save_for(full_id: str) -> Path:
                self.model_card_data.set_model_id(full_id)
                saved = self.save(Path(folder) / "model")
                # a copied card (the ONNX encoder's) keeps its placeholder id: it loads the repository's too
                rewrite_card(saved / "README.md", lambda text: with_model_id(text, full_id))
                return saved

            return upload_to_hub(save_for, repo_id, **options)

    def save_to_hub(self, repo_id: str, organization: str | None = None, token: str | None = None,
                    private: bool | None = None, safe_serialization: bool = True,
                    commit_message: str = "Add new model.", local_model_path: str | None = None,
                    exist_ok: bool = False, replace_model_card: bool = False,
                    train_datasets: list[str] | None = None) -> str:
        """sentence-transformers' older name for :meth:`push_to_hub` (deprecated there and here), with its
        ``organization`` put before a bare ``repo_id``."""
        import warnings

        warnings.warn("save_to_hub is deprecated (as in sentence-transformers): use push_to_hub",
                      DeprecationWarning, stacklevel=2)
        if organization:
            if "/" in repo_id and repo_id.split("/")[0] != organization:
                raise ValueError(f"organization {organization!r} differs from the one in repo_id {repo_id!r}")
            repo_id = repo_id if "/" in repo_id else f"{organization}/{repo_id}"
        return self.push_to_hub(repo_id, token=token, private=private, safe_serialization=safe_serialization,
                                commit_message=commit_message, local_model_path=local_model_path,
                                exist_ok=exist_ok, replace_model_card=replace_model_card,
                                train_datasets=train_datasets)

    def evaluate(self, evaluator: Callable[..., Any], output_path: str | None = None) -> Any:
        """Runs ``evaluator(self, output_path)`` (a sentence-transformers evaluator, or any callable like
        one), creating ``output_path`` first, as sentence-transformers does."""
        if output_path is not None:
            os.makedirs(output_path, exist_ok=True)
        return evaluator(self, output_path)

