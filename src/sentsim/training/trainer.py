"""sentence-transformers' ``SentenceTransformerTrainer`` API as an adapter onto sentsim's one training loop.

Like the classic ``fit`` (``training/compat.py``), it only translates: datasets → text columns,
training arguments → ``TrainConfig``, then ``train`` runs. Arguments sentsim cannot honour are refused
by name instead of being silently ignored.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError
from sentsim.persistence.atomic import atomic_write_json
from sentsim.training.batch_samplers import BatchSamplers, MultiDatasetBatchSamplers
from sentsim.training.config import TrainConfig
from sentsim.training.loop import TrainResult, train
from sentsim.training.trainer_args import SentenceTransformerTrainingArguments
from sentsim.training.trainer_callbacks import TrainerCallbacks
from sentsim.training.trainer_datasets import (
    by_name,
    check_datasets,
    check_prompts,
    is_dataset_dict,
    loss_for,
    prompts_for,
)
from sentsim.training.trainer_eval import (
    LABEL_COLUMNS,
    EvalLoss,
    TrainerEvaluation,
    dataset_columns,
    is_scored,
    reported,
)
from sentsim.training.trainer_state import TrainerState, trainer_state

logger = logging.getLogger(__name__)

__all__ = ["LABEL_COLUMNS", "BatchSamplers", "MultiDatasetBatchSamplers", "SentenceTransformerTrainer",
           "SentenceTransformerTrainingArguments", "TrainOutput", "TrainerState", "dataset_columns"]


@dataclass
class TrainOutput:
    """What ``train()`` returns, as in Hugging Face: steps, mean training loss, and final metrics."""

    global_step: int
    training_loss: float
    metrics: dict[str, float]


class SentenceTransformerTrainer:
    """Trains a sentsim ``SentenceTransformer`` on a ``datasets.Dataset`` (or a dict of columns) with a loss.

    Columns: the texts first (sentence1, sentence2 — or anchor, positive[, negative] for
    MultipleNegativesRankingLoss), then a ``label`` or ``score`` column for scored losses. An
    ``eval_dataset`` is evaluated as sentence-transformers does, with the training loss (``eval_loss``);
    a scored one (two texts and a label) also gets sentsim's similarity metrics unless an evaluator is given.

    Several datasets (a ``DatasetDict`` or a dict of datasets by name) train together, each batch from one
    of them under its own loss (``loss`` may be a dict by dataset name), taking turns as
    ``args.multi_dataset_batch_sampler`` says; several eval datasets report ``eval_<name>_loss`` each.
    """

    def __init__(self, model: Any = None, args: SentenceTransformerTrainingArguments | None = None,
                 train_dataset: Any = None, eval_dataset: Any = None, loss: Any = None, evaluator: Any = None,
                 callbacks: Any = None, **unsupported: Any) -> None:
        given = sorted(name for name, value in unsupported.items() if value is not None)
        if given:
            raise ConfigError(f"SentenceTransformerTrainer: sentsim does not support {', '.join(given)}")
        self.args = args or SentenceTransformerTrainingArguments(output_dir="trainer_output")
        self.callbacks = TrainerCallbacks(disable_tqdm=bool(self.args.disable_tqdm))
        for callback in callbacks or ():
            self.add_callback(callback)
        if model is None:
            raise ConfigError("SentenceTransformerTrainer needs a model")
        check_datasets(train_dataset, eval_dataset, loss)
        if isinstance(evaluator, list | tuple):  # as theirs: several evaluators run as one
            from sentsim.evaluation.evaluators import SequentialEvaluator

            evaluator = SequentialEvaluator(evaluator)
        check_prompts(self.args.prompts, model, (train_dataset, eval_dataset))
        if self.args.eval_strategy != "no" and eval_dataset is None and evaluator is None:
            # sentence-transformers' own words: an evaluation schedule with nothing to evaluate is a mistake
            raise ConfigError(f"You have set `args.eval_strategy` to {self.args.eval_strategy}, but you didn't "
                              "provide an `eval_dataset` or an `evaluator`. Either provide an `eval_dataset` or an "
                              "`evaluator` to `SentenceTransformerTrainer`, or set `args.eval_strategy='no'` to "
                              "skip evaluation.")
        if (self.args.load_best_model_at_end and self.args.metric_for_best_model is None
                and is_dataset_dict(eval_dataset) and len(eval_dataset) > 1):
            raise ConfigError("load_best_model_at_end with several eval datasets needs metric_for_best_model: their "
                              f"losses are {', '.join(f'eval_{name}_loss' for name in eval_dataset)}, and there is "
                              "no eval_loss to rank by")
        if loss is None:
            from sentsim.losses import CoSENTLoss

            loss = CoSENTLoss(model)  # sentence-transformers' default loss too
        self.model = model
        if hasattr(model, "_model_card_text"):
            model._model_card_text = None  # as theirs: a model given to a trainer gets a new card when saved
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.loss = loss
        self.evaluator = evaluator
        self.state = TrainerState()

    def train(self, resume_from_checkpoint: bool | str | None = None, trial: Any = None,
              ignore_keys_for_eval: list[str] | None = None, **unsupported: Any) -> TrainOutput:
        """Trains, saving ``output_dir/checkpoint-<step>`` as ``save_strategy`` says (each loads as a model).

        ``resume_from_checkpoint``: True continues from the latest checkpoint in ``output_dir``, a path from
        that one; the run then goes on exactly as if it had never stopped. ``ignore_keys_for_eval`` has
        nothing to act on here (evaluation reads no model outputs by key); ``trial`` is refused.
        """
        if self.train_dataset is None:
            raise ConfigError("train() needs a train_dataset: pass one to SentenceTransformerTrainer")
        refused = sorted(name for name, value in {**unsupported, "trial": trial}.items() if value is not None)
        if refused:
            raise ConfigError(f"SentenceTransformerTrainer.train: sentsim does not support {', '.join(refused)}")
        args = self.args
        evaluation = self._evaluation(self.eval_dataset) if args.eval_strategy != "no" or args.eval_on_start else None
        if args.eval_on_start and evaluation is None:
            raise ConfigError("eval_on_start=True evaluates before training: pass an eval_dataset or an evaluator "
                              "to SentenceTransformerTrainer")
        config = args.to_config()
        if self.patience is not None:  # Hugging Face's EarlyStoppingCallback checks the same at the start
            if not args.load_best_model_at_end or args.eval_strategy == "no":
                raise ConfigError("EarlyStoppingCallback requires load_best_model_at_end = True and an eval_strategy "
                                  "of steps or epoch")
            config = replace(config, patience=self.patience)
        quiet = True if args.disable_tqdm or not self.callbacks.shows_progress else None
        options = {"config": config, "evaluator": evaluation, "keep_best": args.load_best_model_at_end,
                   "quiet": quiet}
        if is_dataset_dict(self.train_dataset):
            from sentsim.training.multi_dataset import train_tasks

            tasks = self._tasks()
            checkpoints = self._checkpoints(resume_from_checkpoint, config, [len(task.texts[0]) for task in tasks])
            result: TrainResult = train_tasks(self.model, tasks=tasks, **options, checkpoints=checkpoints,
                                              strategy=args.multi_dataset_batch_sampler)
        else:
            texts, labels = self._columns(self.train_dataset, None)
            checkpoints = self._checkpoints(resume_from_checkpoint, config, [len(texts[0])])
            result = train(self.model, sentences_a=texts[0], sentences_b=texts[1], labels=labels,
                           negatives=texts[2] if len(texts) > 2 else None, loss=self.loss, **options,
                           checkpoints=checkpoints)
        self.state = trainer_state(
            step=result.steps, total_steps=result.total_steps, steps_per_epoch=result.steps_per_epoch,
            records=result.records, best_step=result.best_step, best_score=result.best_score,
            best_metrics=result.best_metrics, reporting={**self._reporting(), "save_steps": args.save_steps},
            best_folder=None if checkpoints is None else checkpoints.best_checkpoint(result.best_step))
        if args.output_dir and args.save_strategy != "no":
            self.model.save(args.output_dir)
        training_loss = result.mean_loss if result.mean_loss is not None else _mean_training_loss(result.records)
        seconds = result.train_seconds
        # Hugging Face's train metrics, then the best evaluation's (sentsim's addition)
        metrics = {"train_runtime": round(seconds, 4), "train_samples_per_second": round(result.pairs_per_second, 3),
                   "train_steps_per_second": round(result.steps / seconds, 3) if seconds > 0 else 0.0,
                   "train_loss": training_loss, "epoch": self.state.epoch,
                   **reported(result.best_metrics or {})}
        # the run's closing entry, as Hugging Face logs it (its total_flos too, not its best metrics)
        timing = ("train_runtime", "train_samples_per_second", "train_steps_per_second")
        self.state.log_history.append({**{key: metrics[key] for key in timing},
                                       "total_flos": float(self.state.total_flos), "train_loss": training_loss,
                                       "epoch": self.state.epoch, "step": result.steps})
        return TrainOutput(global_step=result.steps, training_loss=training_loss, metrics=metrics)

    @property
    def patience(self) -> int | None:
        """Evaluations without a gain before the run stops (an EarlyStoppingCallback's), or None."""
        return self.callbacks.patience

    def add_callback(self, callback: Any) -> None:
        """Hugging Face's ``EarlyStoppingCallback`` (class or instance) becomes the loop's patience, and its
        ``ProgressCallback`` / ``PrinterCallback`` put progress back; other callbacks are refused by name, since
        sentsim's loop does not call them."""
        self.callbacks.add(callback)

    def pop_callback(self, callback: Any) -> Any:
        """Takes out and returns the first callback of that class (or that instance), None when there is none:
        taking out ``ProgressCallback`` (or, with ``disable_tqdm``, ``PrinterCallback``) silences the run."""
        return self.callbacks.pop(callback)

    def remove_callback(self, callback: Any) -> None:
        """As :meth:`pop_callback`, returning nothing."""
        self.callbacks.remove(callback)

    def is_world_process_zero(self) -> bool:
        """Whether this is the process that logs and saves (the only one, without ``accelerate launch``)."""
        return int(os.environ.get("RANK", "0")) == 0

    def log_metrics(self, split: str, metrics: dict[str, Any]) -> None:
        """Prints ``metrics`` under a ``***** split metrics *****`` header, as Hugging Face's does."""
        if not self.is_world_process_zero():
            return
        print(f"***** {split} metrics *****")
        width = max((len(key) for key in metrics), default=0)
        for key in sorted(metrics):
            print(f"  {key: <{width}} = {metrics[key]}")

    def save_metrics(self, split: str, metrics: dict[str, Any], combined: bool = True) -> None:
        """``output_dir/<split>_results.json``, and with ``combined`` merged into ``all_results.json``, as
        Hugging Face writes them (each written whole or not at all)."""
        if not self.is_world_process_zero():
            return
        folder = self._output_dir("save_metrics")
        atomic_write_json(folder / f"{split}_results.json", dict(sorted(metrics.items())))
        if combined:
            every = folder / "all_results.json"
            merged = json.loads(every.read_text(encoding="utf-8")) if every.is_file() else {}
            atomic_write_json(every, dict(sorted({**merged, **metrics}.items())))

    def save_state(self) -> None:
        """``output_dir/trainer_state.json``: ``trainer.state`` in Hugging Face's format."""
        if self.is_world_process_zero():
            self.state.save_to_json(self._output_dir("save_state") / "trainer_state.json")

    def _output_dir(self, call: str) -> Path:
        """The arguments' output_dir, made if missing, for ``call`` to write into."""
        if not self.args.output_dir:
            raise ConfigError(f"{call} needs the training arguments' output_dir")
        folder = Path(self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _checkpoints(self, resume_from_checkpoint: bool | str | None, config: TrainConfig,
                     rows: list[int]) -> Any:
        from sentsim.training.trainer_checkpoints import trainer_checkpoints

        args = self.args
        if args.save_strategy == "best" and args.eval_strategy == "no":
            raise ConfigError("save_strategy='best' saves when an evaluation finds a new best: set eval_strategy "
                              "(and an eval_dataset or evaluator)")
        return trainer_checkpoints(output_dir=args.output_dir, strategy=args.save_strategy, save_steps=args.save_steps,
                                   total_limit=args.save_total_limit, resume_from_checkpoint=resume_from_checkpoint,
                                   model=self.model, config=config, train_rows=rows,
                                   overwrite=args.overwrite_output_dir, model_only=args.save_only_model,
                                   reporting=self._reporting())

    def _reporting(self) -> dict[str, float]:
        """What Hugging Face's state records of the arguments besides save_steps (eval_steps defaults to
        logging_steps)."""
        args = self.args
        return {"logging_steps": args.logging_steps, "eval_steps": args.eval_steps or args.logging_steps,
                "train_batch_size": args.per_device_train_batch_size}

    def _columns(self, dataset: Any, name: str | None) -> tuple[list[list[str]], list[float] | None]:
        """A train dataset's text columns (prompts before them) and labels (None for in-batch losses)."""
        in_batch = bool(getattr(loss_for(self.loss, name), "in_batch_negatives", False))
        return dataset_columns(dataset, scored=not in_batch, prompts=prompts_for(self.args.prompts, name))

    def _tasks(self) -> list[Any]:
        from sentsim.training.multi_dataset import TrainingTask

        tasks = []
        for name, dataset in self.train_dataset.items():
            try:
                texts, labels = self._columns(dataset, name)
            except ConfigError as error:
                raise ConfigError(f"train dataset {name!r}: {error}") from error
            tasks.append(TrainingTask(name=name, texts=texts, labels=labels, loss=loss_for(self.loss, name)))
        return tasks

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Saves the model as ``model.save`` does, to ``output_dir`` or else the arguments' (Hugging Face's call)."""
        folder = output_dir or self.args.output_dir
        if not folder:
            raise ConfigError("save_model needs an output_dir: pass one, or set it in the training arguments")
        self.model.save(folder)

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """The current model's ``{prefix}_loss`` on ``eval_dataset`` (else the trainer's) and the evaluator's
        metrics, keys prefixed as in sentence-transformers; works whatever ``eval_strategy`` says. Several
        eval datasets give ``{prefix}_{name}_loss`` each, with the evaluator's metrics once per dataset as
        Hugging Face's evaluate runs it (``{prefix}_{name}_…``); a string picks one of the trainer's by name.

        ``ignore_keys`` names model outputs Hugging Face leaves out of its predictions; sentsim's losses
        return none, so it is accepted and changes nothing.
        """
        if isinstance(eval_dataset, str):
            if not is_dataset_dict(self.eval_dataset) or eval_dataset not in self.eval_dataset:
                known = ", ".join(map(repr, self.eval_dataset)) if is_dataset_dict(self.eval_dataset) else "none"
                raise ConfigError(f"evaluate(eval_dataset={eval_dataset!r}) names no eval dataset of the trainer "
                                  f"(its named ones: {known})")
            return self._evaluate_one(self.eval_dataset[eval_dataset], name=eval_dataset,
                                      prefix=f"{metric_key_prefix}_{eval_dataset}")
        check_datasets(None, eval_dataset, self.loss)
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if is_dataset_dict(dataset):
            metrics: dict[str, float] = {}
            for name, part in dataset.items():
                metrics |= self._evaluate_one(part, name=name, prefix=f"{metric_key_prefix}_{name}")
            return metrics
        return self._evaluate_one(dataset, name=None, prefix=metric_key_prefix)

    def _evaluate_one(self, dataset: Any, *, name: str | None, prefix: str) -> dict[str, float]:
        evaluation = self._evaluation({name: dataset} if name is not None else dataset, prefix=prefix, ranks=False,
                                      named=False)
        if evaluation is None:
            raise ConfigError("evaluate() needs an eval_dataset (here or to the trainer) or an evaluator")
        metrics = evaluation(self.model)  # with its runtime figures, as Hugging Face's evaluate() gives them
        self.state.log_history.append({**metrics, "epoch": self.state.epoch, "step": self.state.global_step})
        return metrics

    def _evaluation(self, dataset: Any, *, prefix: str = "eval", ranks: bool = True,
                    named: bool = True) -> TrainerEvaluation | None:
        """The eval loss over each of ``dataset``'s parts (``{prefix}_{name}_loss`` for named ones when
        ``named``) and the evaluator (else, on each scored part, a similarity evaluator over it), ranked by
        ``metric_for_best_model`` when ``ranks``; None with neither."""
        batch_size = self.args.per_device_eval_batch_size
        losses: dict[str, EvalLoss] = {}
        evaluators: list[tuple[str, Any]] = [(prefix, self.evaluator)] if self.evaluator is not None else []
        for name, part in by_name(dataset).items():
            key = f"{prefix}_{name}" if name is not None and named else prefix
            prompts = prompts_for(self.args.prompts, name)
            if self.evaluator is None and is_scored(part):
                from sentsim.evaluation.evaluators import EmbeddingSimilarityEvaluator

                texts, scores = dataset_columns(part, scored=True, prompts=prompts)
                evaluators.append((key, EmbeddingSimilarityEvaluator(texts[0], texts[1], scores, name=key,
                                                                     batch_size=batch_size)))
            losses[f"{key}_loss"] = EvalLoss(part, loss_for(self.loss, name), batch_size=batch_size,
                                             seed=self.args.seed, prompts=prompts)
        if not losses and not evaluators:
            return None
        return TrainerEvaluation(losses=losses, evaluators=evaluators, ranks=ranks,
                                 metric=self.args.metric_for_best_model if ranks else None)


def _mean_training_loss(records: list[dict[str, Any]]) -> float:
    """The mean loss over the run's steps, Hugging Face's ``train_loss``: each logged mean weighted by the steps
    it covers (its window runs from the step after the previous log)."""
    total, steps, previous = 0.0, 0, 0
    for record in records:
        if record.get("kind") == "train":
            total += record["loss"] * (record["step"] - previous)
            steps, previous = steps + record["step"] - previous, record["step"]
    return total / steps if steps else 0.0
