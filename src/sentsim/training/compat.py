"""The classic sentence-transformers training API (``InputExample``, ``SentencesDataset``, ``fit``).

Thin adapters only: ``fit`` turns the classic arguments into a ``TrainConfig`` and runs the same loop
as ``sentsim train``, so the two entry points cannot drift apart.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn
from torch.utils.data import Dataset

from sentsim.errors import ConfigError
from sentsim.training.config import TrainConfig
from sentsim.training.loop import PRIMARY_METRIC, train
from sentsim.training.multi_dataset import TrainingTask, train_tasks
from sentsim.training.trainer_checkpoints import trainer_checkpoints
from sentsim.training.trainer_eval import checked_scores, checked_texts

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

logger = logging.getLogger(__name__)


@dataclass
class InputExample:
    """One training pair: ``texts=[sentence_a, sentence_b]`` and a 0–1 ``label``."""

    guid: str = ""
    texts: list[str] = field(default_factory=list)
    label: float = 0.0


class SentencesDataset(Dataset):
    """A list of ``InputExample``; the model argument is accepted for compatibility and unused.

    Tokenisation happens once inside the training loop, which caches ids per distinct sentence.
    """

    def __init__(self, examples: Iterable[InputExample], model: Any = None) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> InputExample:
        return self.examples[index]


class NoDuplicatesDataLoader:
    """sentence-transformers' classic loader for MultipleNegativesRankingLoss: batches in which no text
    appears twice (compared stripped and lower-cased), so that no text is its own in-batch negative.

    ``fit`` reads its examples (``dataset``) and ``batch_size`` and batches by length itself; sentsim's
    MultipleNegativesRankingLoss masks in-batch duplicates instead, to the same end. Iterated, it yields
    ``len(self)`` batches as theirs does: shuffled rows, a row whose text is already in the batch kept for
    a later one.
    """

    def __init__(self, train_examples: Iterable[InputExample], batch_size: int, *, seed: int | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.dataset = list(train_examples)
        self.batch_size = batch_size
        self.collate_fn: Any = None  # sentence-transformers' fit sets one; batches are returned as lists without
        self._random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self) -> Iterator[Any]:
        pending = deque(self._random.sample(range(len(self.dataset)), len(self.dataset)))
        for _ in range(len(self)):
            batch, seen, deferred = [], set(), []
            while pending and len(batch) < self.batch_size:
                example = self.dataset[index := pending.popleft()]
                texts = {str(text).strip().lower() for text in example.texts}
                if texts & seen:
                    deferred.append(index)
                    continue
                seen |= texts
                batch.append(example)
            pending.extendleft(reversed(deferred))
            if not batch:
                return
            yield self.collate_fn(batch) if self.collate_fn is not None else batch


#: The classic ``fit(scheduler=...)`` names → transformers' schedules, as sentence-transformers maps them.
FIT_SCHEDULES = {"constantlr": "constant", "warmupconstant": "constant_with_warmup", "warmuplinear": "linear",
                 "warmupcosine": "cosine", "warmupcosinewithhardrestarts": "cosine_with_restarts"}


def fit(
    model: SentenceTransformer,
    train_objectives: Sequence[tuple[Any, nn.Module]],
    evaluator: Any = None,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    scheduler: str = "WarmupLinear",
    warmup_steps: int = 10000,
    optimizer_class: Any = None,
    optimizer_params: dict[str, Any] | None = None,
    weight_decay: float = 0.01,
    evaluation_steps: int = 0,
    output_path: str | Path | None = None,
    save_best_model: bool = True,
    max_grad_norm: float = 1.0,
    use_amp: bool = False,
    show_progress_bar: bool = True,
    seed: int = 42,
    **ignored: Any,
) -> None:
    """Trains like sentence-transformers' classic ``model.fit``; batching and precision are sentsim's.

    ``scheduler`` takes theirs names (WarmupLinear, WarmupCosine, WarmupConstant, ConstantLR,
    WarmupCosineWithHardRestarts). Arguments that only exist for sentence-transformers' own machinery
    (``optimizer_class``, ``use_amp``, ``steps_per_epoch``, callbacks) are accepted and logged as
    ignored, so existing scripts run unchanged. ``checkpoint_path`` saves checkpoints there as theirs
    does (through the Trainer: ``checkpoint-<step>`` folders every ``checkpoint_save_steps``, the newest
    ``checkpoint_save_total_limit`` kept, 0 keeping all), each a loadable model.
    """
    checkpoint_path = ignored.pop("checkpoint_path", None)
    save_steps = ignored.pop("checkpoint_save_steps", 500)
    save_limit = ignored.pop("checkpoint_save_total_limit", 0)
    objectives = _objectives(train_objectives)
    saves_best = evaluator is not None and output_path is not None and save_best_model
    if evaluator is not None:
        evaluator = _FitEvaluator(evaluator, model, output_path, save_best=saves_best)
    schedule = FIT_SCHEDULES.get(str(scheduler).lower())
    if schedule is None:
        raise ConfigError(f"Unknown scheduler {scheduler!r}: one of WarmupLinear, WarmupCosine, WarmupConstant, "
                          "ConstantLR, WarmupCosineWithHardRestarts")
    unused = {"optimizer_class": optimizer_class is not None,
              "use_amp": use_amp, "steps_per_epoch": steps_per_epoch is not None, **dict.fromkeys(ignored, True)}
    for name, used in unused.items():
        if used:
            logger.warning("fit: %s is not used by sentsim (linear warmup/decay AdamW, automatic bf16)", name)
    config = TrainConfig(
        # as theirs: several objectives train with the last one's batch size
        batch_size=getattr(objectives[-1][0], "batch_size", None) or 16,
        learning_rate=float((optimizer_params or {}).get("lr", 2e-5)),
        epochs=epochs,
        warmup_steps=warmup_steps,
        lr_schedule=schedule,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        evaluation_steps=evaluation_steps,
        seed=seed,
    )
    tasks = [_task(number, loss, examples) for number, (_, loss, examples) in enumerate(objectives, start=1)]
    checkpoints = trainer_checkpoints(  # checkpoint_save_steps None or 0: none, as in their classic fit
        output_dir=None if checkpoint_path is None else str(checkpoint_path),
        strategy="steps" if save_steps else "no", save_steps=save_steps, total_limit=save_limit or None,
        resume_from_checkpoint=None, model=model, config=config, train_rows=[len(task.texts[0]) for task in tasks])
    # as theirs: the model in memory ends on its last weights (keep_best=False)
    if len(tasks) == 1:
        task = tasks[0]
        train(model, sentences_a=task.texts[0], sentences_b=task.texts[1], labels=task.labels,
              negatives=task.texts[2] if len(task.texts) == 3 else None, config=config, loss=task.loss,
              evaluator=evaluator, keep_best=False, quiet=not show_progress_bar, checkpoints=checkpoints)
    else:  # sentence-transformers 3+ trains several objectives as datasets taking turns, one batch each
        train_tasks(model, tasks=tasks, config=config, strategy="round_robin", evaluator=evaluator, keep_best=False,
                    quiet=not show_progress_bar, checkpoints=checkpoints)
    if output_path is not None and not saves_best:
        model.save(output_path)


class _FitEvaluator:
    """sentence-transformers' ``fit(evaluator=..., output_path=...)`` around the user's evaluator.

    With ``output_path``, each evaluation during training writes its row of the evaluator's CSV under
    ``output_path/eval`` (epoch and step included), as sentence-transformers' fit does; with
    ``save_best`` the model is also saved to ``output_path`` each time the primary metric beats every
    earlier score of the run. sentsim's loop also scores the untrained model first (its first call
    here); that score is logged but written nowhere and is not a checkpoint to beat, since
    sentence-transformers never evaluates before training, and a run whose training never beat it
    must still leave its trained model at ``output_path``.
    """

    takes_progress = True  # the loop passes step= and epoch=

    def __init__(self, evaluator: Any, model: SentenceTransformer, output_path: str | Path | None, *,
                 save_best: bool) -> None:
        self.evaluator, self.model, self.save_best = evaluator, model, save_best
        self.output_path = None if output_path is None else Path(output_path)
        self.calls = 0
        self.best: float | None = None

    @property
    def primary_metric(self) -> str | None:
        return getattr(self.evaluator, "primary_metric", None)

    def __call__(self, model: Any, *, step: int = -1, epoch: float = -1) -> dict[str, float]:
        self.calls += 1
        if self.calls == 1 or self.output_path is None:
            return self.evaluator(model)
        if _writes_files(self.evaluator):
            eval_folder = self.output_path / "eval"
            eval_folder.mkdir(parents=True, exist_ok=True)
            metrics = self.evaluator(model, output_path=str(eval_folder), epoch=epoch, steps=step)
        else:
            metrics = self.evaluator(model)
        if self.save_best:
            score = metrics[self.primary_metric or PRIMARY_METRIC]
            if self.best is None or score > self.best:
                self.best = score
                self.model.save(self.output_path)
        return metrics


def _writes_files(evaluator: Any) -> bool:
    """Whether ``evaluator`` takes sentence-transformers' ``output_path``/``epoch``/``steps`` (theirs and
    sentsim's evaluators do); a plain ``f(model)`` callable is called with the model alone."""
    try:
        parameters = inspect.signature(evaluator).parameters
    except (TypeError, ValueError):
        return False
    return {"output_path", "epoch", "steps"} <= set(parameters) or any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())


def _objectives(train_objectives: Sequence[tuple[Any, nn.Module]]) -> list[tuple[Any, nn.Module, list[InputExample]]]:
    """Each (dataloader, loss) objective with its examples: all pairs, or all triplets for in-batch losses."""
    if not train_objectives:
        raise ConfigError("fit needs at least one (dataloader, loss) objective")
    objectives = []
    for number, (dataloader, loss) in enumerate(train_objectives, start=1):
        examples = list(getattr(dataloader, "dataset", dataloader))
        in_batch = bool(getattr(loss, "in_batch_negatives", False))
        sizes = {len(example.texts) for example in examples if isinstance(example, InputExample)}
        if not examples or not all(isinstance(example, InputExample) for example in examples) or \
                not (sizes == {2} or (in_batch and sizes == {3})):
            where = f"objective {number}: " if len(train_objectives) > 1 else ""
            raise ConfigError(f"{where}fit expects a DataLoader over InputExample pairs (texts=[a, b], label=score), "
                              "or for MultipleNegativesRankingLoss texts=[anchor, positive] or "
                              "[anchor, positive, negative]")
        objectives.append((dataloader, loss, examples))
    return objectives


def _task(number: int, loss: nn.Module, examples: list[InputExample]) -> TrainingTask:
    """One objective's checked columns, as a training dataset (named as sentence-transformers names it)."""
    in_batch = bool(getattr(loss, "in_batch_negatives", False))
    texts = [checked_texts((example.texts[side] for example in examples), f"InputExample texts[{side}]")
             for side in range(len(examples[0].texts))]
    labels = None if in_batch else checked_scores((example.label for example in examples), "InputExample label")
    return TrainingTask(name=f"_dataset_{number}", texts=texts, labels=labels, loss=loss)
