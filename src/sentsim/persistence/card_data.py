"""``model.model_card_data``: what code written for sentence-transformers tells a model about itself.

Their code passes ``SentenceTransformer(..., model_card_data=SentenceTransformerModelCardData(language="en",
license="apache-2.0", model_id="me/my-model", train_datasets=[{"name": "STSB"}]))``, and their evaluators
record their figures with ``model.model_card_data.set_evaluation_metrics(...)``. A card that dropped those
would publish a model without its licence, language or scores, so :class:`ModelCardData` keeps the fields
a user sets (read from their object, a mapping or keywords) and every evaluation, and the card that
``save`` writes (``sentsim.persistence.minimal_card``) shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentsim.errors import ConfigError

#: The fields a user sets on sentence-transformers' card data; the rest of theirs is computed by their Trainer.
USER_FIELDS = ("language", "license", "model_name", "model_id", "train_datasets", "eval_datasets", "task_name",
               "tags")


class ModelCardData:
    """The user's card fields and the evaluations recorded on the model, in order.

    ``evaluations`` holds one ``{"evaluator", "name", "metrics", "epoch", "step"}`` per
    ``set_evaluation_metrics`` call (a sentence-transformers evaluator, ``model.evaluate`` or ``fit``'s).
    """

    def __init__(self, *, language: str | list[str] | None = None, license: str | None = None,
                 model_name: str | None = None, model_id: str | None = None,
                 train_datasets: list[dict[str, str] | str] | None = None,
                 eval_datasets: list[dict[str, str] | str] | None = None, task_name: str | None = None,
                 tags: list[str] | None = None, local_files_only: bool = False,
                 generate_widget_examples: bool = True) -> None:
        """sentence-transformers' fields (``SentenceTransformerModelCardData``'s keywords). ``local_files_only``
        and ``generate_widget_examples`` steer their hub look-ups and widget; sentsim's card makes neither,
        so they are kept and change nothing."""
        self.language = [language] if isinstance(language, str) else list(language or [])
        self.license = license
        self.model_name = model_name
        self.model_id = model_id
        self.train_datasets = [_dataset(entry, "train_datasets") for entry in train_datasets or []]
        self.eval_datasets = [_dataset(entry, "eval_datasets") for entry in eval_datasets or []]
        self.task_name = task_name
        self.tags = list(tags or [])
        self.local_files_only = local_files_only
        self.generate_widget_examples = generate_widget_examples
        #: The hub id (and revision) the model was loaded from; None for a local folder. Set on loading.
        self.base_model: str | None = None
        self.base_model_revision: str | None = None
        for name in ("license", "model_name", "model_id", "task_name"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"model_card_data {name} must be a string, not {getattr(self, name)!r}")
        for name in ("language", "tags"):
            if not all(isinstance(item, str) and item.strip() for item in getattr(self, name)):
                raise ConfigError(f"model_card_data {name} must be a string or a list of non-empty strings")
        self.evaluations: list[dict[str, Any]] = []

    @classmethod
    def from_user(cls, given: Any) -> ModelCardData:
        """``model_card_data=`` as given: None, one of these, a mapping of :data:`USER_FIELDS`, or any object
        with those attributes (sentence-transformers' ``SentenceTransformerModelCardData``).

        Their default tags and task name describe their library, so only what differs from their defaults
        is read from their object; a mapping with another key is refused by name.
        """
        if given is None:
            return cls()
        if isinstance(given, cls):
            return given
        if isinstance(given, Mapping):
            unknown = sorted(set(given) - set(USER_FIELDS))
            if unknown:
                raise ConfigError(f"model_card_data has no field {', '.join(map(repr, unknown))}; "
                                  f"the fields are {', '.join(USER_FIELDS)}")
            return cls(**dict(given))
        if not any(hasattr(given, name) for name in USER_FIELDS):
            raise ConfigError(f"model_card_data must be sentence-transformers' model card data, a mapping of "
                              f"{', '.join(USER_FIELDS)}, or None; not {type(given).__name__}")
        fields = {name: getattr(given, name, None) for name in USER_FIELDS}
        fields["tags"] = [tag for tag in fields["tags"] or [] if tag not in _THEIR_DEFAULT_TAGS]
        if fields["task_name"] and str(fields["task_name"]).startswith(_THEIR_DEFAULT_TASK):
            fields["task_name"] = None
        return cls(**fields)

    def set_evaluation_metrics(self, evaluator: Any, metrics: dict[str, Any], epoch: float = 0,
                               step: int = 0) -> None:
        """Called by sentence-transformers' evaluators with the figures they computed."""
        self.evaluations.append({"evaluator": type(evaluator).__name__, "name": getattr(evaluator, "name", ""),
                                 "metrics": dict(metrics), "epoch": epoch, "step": step})

    def set_base_model(self, model_id: str, revision: str | None = None) -> None:
        """Records the hub model the weights came from (sentence-transformers' name for it)."""
        self.base_model, self.base_model_revision = model_id, revision

    def set_model_id(self, model_id: str) -> None:
        """The hub id the card's usage snippet loads (``push_to_hub`` sets it to the repository's)."""
        self.model_id = model_id

    def latest_metrics(self) -> dict[str, float]:
        """Each metric's last value over all recorded evaluations (later evaluations win), numbers only."""
        latest: dict[str, float] = {}
        for record in self.evaluations:
            latest.update({key: float(value) for key, value in record["metrics"].items()
                           if isinstance(value, int | float) and not isinstance(value, bool)})
        return latest

    def dataset_ids(self) -> list[str]:
        """The hub ids of the train and eval datasets, in order, once each (the card's ``datasets:``)."""
        ids = [entry.get("id") for entry in self.train_datasets + self.eval_datasets]
        return list(dict.fromkeys(item for item in ids if item))


_THEIR_DEFAULT_TAGS = {"sentence-transformers", "sentence-similarity", "feature-extraction", "dense"}
_THEIR_DEFAULT_TASK = "semantic textual similarity, semantic search"


def _dataset(entry: dict[str, str] | str, field: str) -> dict[str, str]:
    """``{"name": ..., "id": ...}`` (either may be missing) from their dict form or a bare hub id."""
    if isinstance(entry, str) and entry.strip():
        return {"id": entry}
    if isinstance(entry, Mapping) and entry and set(entry) <= {"name", "id", "revision"} \
            and all(isinstance(value, str) and value.strip() for value in entry.values()):
        return dict(entry)
    raise ConfigError(f"model_card_data {field} entries are a dataset id or a dict with 'name' and/or 'id', "
                      f"not {entry!r}")


#: sentence-transformers' name, so ``from sentsim import SentenceTransformerModelCardData`` works as theirs.
SentenceTransformerModelCardData = ModelCardData
