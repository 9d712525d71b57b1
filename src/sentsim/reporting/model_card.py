"""The model card: the README.md saved inside a trained model folder.

The card is the one document that travels with the weights, so it carries what someone who finds
the folder needs: how to load it, what it was trained from and on, how good it is with what
uncertainty, and the command that made it. Its YAML front matter follows the Hugging Face Hub
model-card conventions (``model-index`` results) so hub tooling and leaderboards can read the scores.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sentsim.persistence.minimal_card import LOCAL_PLACEHOLDER

__all__ = ["render_model_card"]

_SPLITS = ("dev", "test")
_METRIC_NAMES = {"spearman_cosine": "Spearman (cosine)", "pearson_cosine": "Pearson (cosine)"}
_TAGS = ("sentence-transformers", "sentence-similarity", "feature-extraction", "sentsim")
_DATASET_ID = "sentence-transformers/stsb"
# A Hub repository id: "name" or "owner/name". Local paths are not, and the Hub rejects cards whose
# base_model does not name a repository, so those only appear in the card body.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, and quoting always avoids YAML surprises
    # such as a model called "yes" or "1e5" being read back as a boolean or a number.
    return json.dumps(value, ensure_ascii=False)


def escape_markdown(value: Any) -> str:
    """Make ``value`` safe inside a Markdown table cell or paragraph: no markup, no table breaks.

    Shared with the run report, whose tables hold arbitrary sentences from the data.
    """
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", text)


def code_block(text: str, language: str = "") -> str:
    """Fence ``text`` with more backticks than it contains in a row, so it cannot close the fence."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _format_interval(interval: Any) -> str:
    if isinstance(interval, Sequence) and not isinstance(interval, str) and len(interval) == 2:
        low, high = _number(interval[0]), _number(interval[1])
        if low is not None and high is not None:
            return f"[{low:.2f}, {high:.2f}]"
    return ""


def _front_matter(*, model_name: str, base_model: str, metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    # The folder is in the sentence-transformers layout, so the Hub files it under that library.
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity", "tags:"]
    lines += [f"- {tag}" for tag in _TAGS]
    if _HUB_ID.match(base_model):
        lines.append(f"base_model: {_yaml_string(base_model)}")
    lines += ["datasets:", f"- {_DATASET_ID}", "language:", "- en"]
    results: list[str] = []
    for split in _SPLITS:
        split_metrics = metrics.get(split)
        if not isinstance(split_metrics, Mapping):
            continue
        numbers = {key: _number(split_metrics.get(key)) for key in _METRIC_NAMES}
        values = [(key, value) for key, value in numbers.items() if value is not None]
        if not values:
            continue
        results += [
            "  - task:",
            "      type: semantic-similarity",
            "      name: Semantic Similarity",
            "    dataset:",
            "      name: STS Benchmark",
            "      type: sts",
            f"      split: {split}",
            "    metrics:",
        ]
        for key, value in values:
            results += [
                f"    - type: {key}",
                f"      value: {round(value, 2)}",
                f"      name: {_yaml_string(_METRIC_NAMES[key])}",
            ]
    if results:
        lines += ["model-index:", f"- name: {_yaml_string(model_name)}", "  results:", *results]
    lines.append("---")
    return lines


def render_model_card(
    *,
    model_name: str,
    base_model: str,
    loss: str,
    data: str,
    hyperparameters: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    confidence_intervals: Mapping[str, Mapping[str, Sequence[float]]] | None,
    command: str,
    dimensions: int,
    max_seq_length: int,
    pooling: str,
    base_metrics: Mapping[str, Mapping[str, Any]] | None = None,
    per_genre: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    calibrated: bool = False,
) -> str:
    """Render the Markdown README for a saved model folder.

    Args:
        model_name: the model's name, used as title and as ``model-index`` name.
        base_model: the model training started from (Hub id or path). Only a Hub id goes into the
            front matter, because the Hub rejects a ``base_model`` that names no repository.
        loss: training loss name, e.g. ``"cosent"``.
        data: description or path of the training data.
        hyperparameters: option → value, shown as the training-details table in the given order.
        metrics: ``{"dev": {"spearman_cosine": 86.1, "pearson_cosine": 85.9}, "test": {...}}``, values
            ×100 as in ``summary.json``; other splits and metrics are listed in the body only.
        confidence_intervals: ``{"dev": {"spearman_cosine": [low, high]}, ...}`` (×100) or ``None``.
        command: the command line that trained the model, for reproduction.
        dimensions: embedding size.
        max_seq_length: longest input in tokens before truncation.
        pooling: pooling mode, e.g. ``"mean"``.
        base_metrics: the base model's scores before training, same shape as ``metrics``.
        per_genre: ``{"test": {"news": {"base": 80.1, "trained": 84.2}, ...}}`` Spearman ×100 per genre.
        calibrated: whether the folder holds a ``calibration.json`` (0–5 scores).

    Returns:
        The card text, ending in a newline.
    """
    lines = _front_matter(model_name=model_name, base_model=base_model, metrics=metrics)
    lines += _description_and_usage(model_name=model_name, base_model=base_model, loss=loss, dimensions=dimensions,
                                    pooling=pooling, max_seq_length=max_seq_length)
    settings = {"Base model": base_model, "Loss": loss, "Training data": data, "Pooling": pooling,
                "Embedding dimensions": dimensions, "Max sequence length": max_seq_length}
    lines += ["", "## Training details", "", "| Setting | Value |", "| --- | --- |"]
    lines += [f"| {key} | {escape_markdown(value)} |" for key, value in settings.items()]
    lines += [f"| {escape_markdown(key)} | {escape_markdown(value)} |" for key, value in hyperparameters.items()]
    lines += _evaluation_section(metrics, confidence_intervals or {})
    lines += _base_scores_section(base_model, base_metrics or {})
    lines += _calibration_section(calibrated)
    lines += _limitations_section(per_genre or {})
    lines += ["", "## Reproduce", "", code_block(command, "bash"), ""]
    return "\n".join(lines)


def _base_scores_section(base_model: str, base_metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The base model's finite scores before training, as a table; nothing without them."""
    if not base_metrics:
        return []
    lines = ["", "## Base model scores", "", f"{escape_markdown(base_model)} before training (×100):", "",
             "| Split | Metric | Value |", "| --- | --- | --- |"]
    lines += [f"| {escape_markdown(split)} | {escape_markdown(_METRIC_NAMES.get(key, key))} | {number:.2f} |"
              for split, values in base_metrics.items() if isinstance(values, Mapping)
              for key, number in ((k, _number(v)) for k, v in values.items()) if number is not None]
    return lines


def _description_and_usage(*, model_name: str, base_model: str, loss: str, dimensions: int, pooling: str,
                           max_seq_length: int) -> list[str]:
    return [
        "",
        f"# {escape_markdown(model_name)}",
        "",
        f"A sentence-embedding model for semantic textual similarity, fine-tuned with sentsim from "
        f"{escape_markdown(base_model)} with the {escape_markdown(loss)} loss. It maps a sentence to a "
        f"{dimensions}-dimensional vector ({escape_markdown(pooling)} pooling, inputs truncated at "
        f"{max_seq_length} tokens); the cosine similarity of two vectors "
        "estimates how similar the sentences are in meaning.",
        "",
        "## Usage",
        "",
        code_block(
            "from sentsim import SentenceTransformer\n"
            "\n"
            f'model = SentenceTransformer("{LOCAL_PLACEHOLDER}")\n'
            "embeddings = model.encode([\n"
            '    "A man is playing a guitar.",\n'
            '    "Someone is playing an instrument.",\n'
            "])",
            "python",
        ),
        "",
        "The folder uses the sentence-transformers layout, so "
        f'`sentence_transformers.SentenceTransformer("{LOCAL_PLACEHOLDER}")` loads it too.',
    ]


def _evaluation_section(metrics: Mapping[str, Mapping[str, Any]],
                        intervals: Mapping[str, Mapping[str, Sequence[float]]]) -> list[str]:
    """The metrics table (every finite metric of every split, with its interval where known), or nothing."""
    metric_rows: list[str] = []
    for split, split_metrics in metrics.items():
        if not isinstance(split_metrics, Mapping):
            continue
        for key, value in split_metrics.items():
            number = _number(value)
            if number is None:
                continue
            interval = _format_interval(intervals.get(split, {}).get(key))
            label = _METRIC_NAMES.get(key, key)
            metric_rows.append(f"| {escape_markdown(split)} | {escape_markdown(label)} | {number:.2f} | {interval} |")
    if not metric_rows:
        return []
    return [
        "",
        "## Evaluation",
        "",
        "Correlation ×100 between the cosine similarity of the embeddings and the gold scores of the "
        "STS Benchmark. The interval column, where filled, is the confidence interval computed "
        "during training.",
        "",
        "| Split | Metric | Value | Confidence interval |",
        "| --- | --- | ---: | --- |",
        *metric_rows,
    ]


def _calibration_section(calibrated: bool) -> list[str]:
    if not calibrated:
        return ["", "## 0–5 scores", "", "This folder has no `calibration.json`; run "
                "`sentsim calibrate MODEL --data PAIRS` to fit the cosine → 0–5 map on scored pairs."]
    return ["", "## 0–5 scores (calibration.json)", "",
            "Raw cosines of a trained model bunch up in a narrow band, while people read STS scores on 0–5. "
            "`calibration.json` holds an isotonic map from cosine to the 0–5 scale, fitted on the dev split; "
            "sentence-transformers ignores it, sentsim applies it:", "",
            code_block('from sentsim import SentenceTransformer\n\n'
                       f'model = SentenceTransformer("{LOCAL_PLACEHOLDER}")\n'
                       'model.sts_score("A man is playing a guitar.", "Someone plays an instrument.")  # 0–5',
                       "python"),
            "", "or on the command line: `sentsim similarity MODEL \"text a\" \"text b\"`."]


def _limitations_section(per_genre: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    lines = ["", "## Limitations", "", "Trained and evaluated on English STS Benchmark pairs (news, image "
             "captions, forums); other domains and languages may score lower."]
    split = "test" if "test" in per_genre else next(iter(per_genre), None)
    if split is None:
        return lines
    lines += ["", f"Spearman ×100 per genre ({escape_markdown(split)}):", "", "| Genre | Base | Trained |",
              "| --- | --- | --- |"]
    for genre, change in per_genre[split].items():
        base, trained = _number(change.get("base")), _number(change.get("trained"))
        lines.append(f"| {escape_markdown(genre)} | {'' if base is None else f'{base:.2f}'} | "
                     f"{'' if trained is None else f'{trained:.2f}'} |")
    return lines

