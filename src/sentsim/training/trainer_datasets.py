"""The Trainer adapter's datasets: one dataset, or several by name (a ``DatasetDict``), their losses and prompts.

sentence-transformers trains on a dict of datasets with one loss for all or a dict of losses by dataset
name, and reads ``prompts`` per dataset name when the names are its keys. These helpers resolve all
that to one dataset at a time, with sentence-transformers' own error messages where theirs refuse.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from sentsim.errors import ConfigError
from sentsim.training.trainer_eval import column_names, text_columns

logger = logging.getLogger(__name__)

#: Column names sentence-transformers keeps for itself: a dataset using one is refused there too.
RESERVED_COLUMNS = ("return_loss", "dataset_name")

Prompts = str | dict[str, str] | dict[str, "str | dict[str, str]"] | None


def is_dataset_dict(dataset: Any) -> bool:
    """A dict of datasets by name (a ``DatasetDict``), not a dict of columns (whose values are lists)."""
    return isinstance(dataset, dict) and bool(dataset) and all(
        not isinstance(value, list | tuple) for value in dataset.values())


def by_name(dataset: Any) -> dict[str | None, Any]:
    """``{name: dataset}`` for a dict of datasets, ``{None: dataset}`` for one, ``{}`` for None."""
    if dataset is None:
        return {}
    return dict(dataset) if is_dataset_dict(dataset) else {None: dataset}


def check_datasets(train_dataset: Any, eval_dataset: Any, loss: Any) -> None:
    """Reserved column names, and a dict of losses that does not cover the datasets, as theirs refuse them."""
    for role, dataset in (("train", train_dataset), ("eval", eval_dataset)):
        for name, part in by_name(dataset).items():
            _refuse_reserved_columns(part, name or role)  # "your stsb dataset", as theirs names a named one
    if not isinstance(loss, dict):
        return
    for role, dataset in (("train", train_dataset), ("eval", eval_dataset)):
        if dataset is None:
            continue
        if not is_dataset_dict(dataset):
            raise ConfigError(f"If the provided `loss` is a dict, then the `{role}_dataset` must be a `DatasetDict`.")
        if missing := set(dataset) - set(loss):
            raise ConfigError(f"If the provided `loss` is a dict, then all keys from the `{role}_dataset` dictionary "
                              f"must occur in `loss` also. Currently, {sorted(missing)} "
                              f"occur{'s' if len(missing) == 1 else ''} in `{role}_dataset` but not in `loss`.")


def loss_for(loss: nn.Module | dict[str, nn.Module], name: str | None) -> nn.Module:
    """The loss a dataset trains and is evaluated with: its own from a dict of losses, else the one loss."""
    return loss[name] if isinstance(loss, dict) and name is not None else loss


def prompts_for(prompts: Prompts, name: str | None) -> str | dict[str, str] | None:
    """The prompts of dataset ``name`` (None: the one dataset), read as sentence-transformers' collator does:
    its entry when the dict has its name; else none when the dict is nested (by dataset name); else the
    dict of column prompts, or the one prompt, for every dataset."""
    if not isinstance(prompts, dict) or not prompts:
        return prompts or None
    if name is not None and name in prompts:
        return prompts[name]
    if any(isinstance(value, dict) for value in prompts.values()):
        if name is None:
            raise ConfigError("The prompts provided to the trainer are a nested dictionary. In this setting, the "
                              "first level of the dictionary should map to dataset names and the second level to "
                              "column names. However, as the provided dataset is a not a DatasetDict, no dataset "
                              f"names can be inferred. The keys to the provided prompts dictionary are "
                              f"{list(prompts.keys())!r}")
        return None
    return prompts  # type: ignore[return-value]


def check_prompts(prompts: Prompts, model: Any, datasets: tuple[Any, ...]) -> None:
    """Refuses prompts sentsim would apply otherwise than sentence-transformers: for a pooling that leaves
    the prompt's tokens out (``include_prompt=False``, which training does not track). Prompts naming a
    column (or a dataset) that no dataset has are never used, there as here: a warning says so."""
    if not prompts:
        return
    if any(getattr(module, "include_prompt", True) is False for module in getattr(model, "modules", list)()):
        raise ConfigError("prompts in training are not supported for a pooling with include_prompt=False: "
                          "put the prompt in the texts, or train with include_prompt=True")
    if not isinstance(prompts, dict):
        return
    named = [by_name(dataset) for dataset in datasets]
    names = {name for parts in named for name in parts if name is not None}
    for name in (name for parts in named for name in parts):
        prompts_for(prompts, name)  # a nested dict for one dataset is refused here, with their message
    columns = {column for parts in named for part in parts.values() for column in text_columns(part)}
    unknown = sorted(key for key, value in prompts.items()
                     if key not in names and (isinstance(value, dict) or key not in columns))
    if unknown:  # theirs ignores them silently; code that runs there runs here, but not unannounced
        logger.warning("prompts name %s, which is neither a dataset name nor a text column of the datasets "
                       "(datasets: %s; columns: %s): they are not used", ", ".join(map(repr, unknown)),
                       ", ".join(sorted(names)) or "one, unnamed", ", ".join(sorted(columns)))


def _refuse_reserved_columns(dataset: Any, role: str) -> None:
    """Refuses the column names sentence-transformers reserves, with their message: code that works here
    must not fail there."""
    if not (hasattr(dataset, "column_names") or isinstance(dataset, dict)):
        return
    invalid = [name for name in column_names(dataset) if name in RESERVED_COLUMNS]
    if invalid:
        raise ConfigError(f"The following column names are invalid in your {role} dataset: {invalid}. Avoid using "
                          "these column names, as they are reserved for internal use.")
