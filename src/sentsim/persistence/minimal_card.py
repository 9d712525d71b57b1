"""The README.md ``SentenceTransformer.save`` writes when no training run describes the model.

``sentsim train`` writes the full card (``sentsim.reporting.model_card``); this one says what the folder
is, how to load it and how to get 0–5 scores, so a saved folder is never without a card. What the user
set in ``model_card_data`` (language, licence, datasets, tags, name, hub id) goes into it, and so do
the figures of the evaluators run on the model (:class:`~sentsim.persistence.card_data.ModelCardData`).
"""

from __future__ import annotations

import json
import math
import re

from sentsim.persistence.card_data import ModelCardData

_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


#: The line that marks a card as this one: rebuilt from the model on every save, never kept as a loaded card.
MARKER = "<!-- sentsim: this card is written anew by every save() -->"

#: What sentence-transformers' cards load when the model has no hub id yet (``save`` without ``model_name``).
PLACEHOLDER_ID = "sentence_transformers_model_id"
#: What the training run's card (``sentsim.reporting.model_card``) loads until the model has a hub id.
LOCAL_PLACEHOLDER = "path/to/this/model"

_OUR_TAGS = ["sentence-transformers", "sentence-similarity", "sentsim"]


def render_minimal_card(*, model_name: str, base_model: str, dimensions: int, max_seq_length: int,
                        pooling: str, calibrated: bool, model_id: str | None = None,
                        card: ModelCardData | None = None) -> str:
    """The card's text. The title is ``card.model_name``, else ``model_name``; the usage snippet loads
    ``card.model_id``, else ``model_id`` (``save(path, model_name=...)``, usually the hub id), else
    sentence-transformers' placeholder id, as their cards have it."""
    card = card or ModelCardData()
    front = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity"]
    front += _yaml_list("language", card.language)
    if card.license:
        front.append(f"license: {json.dumps(card.license)}")
    front += _yaml_list("tags", list(dict.fromkeys(_OUR_TAGS + card.tags)))
    front += _yaml_list("datasets", card.dataset_ids())
    if _HUB_ID.match(base_model):
        front.append(f"base_model: {json.dumps(base_model)}")
    front += ["---", MARKER]
    scores = ("`calibration.json` maps cosine to the 0–5 STS scale: `model.sts_score(a, b)` in sentsim."
              if calibrated else "No `calibration.json`: `sentsim calibrate MODEL --data PAIRS` fits the "
              "cosine → 0–5 map on scored pairs, after which `model.sts_score(a, b)` gives 0–5 scores.")
    task = f" for {card.task_name}" if card.task_name else ""
    body = ["", f"# {card.model_name or model_name}", "",
            f"A sentence-embedding model{task} ({dimensions} dimensions, {pooling} pooling, inputs up to "
            f"{max_seq_length} tokens) saved by sentsim from {base_model}, in the sentence-transformers layout: "
            "`sentsim.SentenceTransformer(path)` and `sentence_transformers.SentenceTransformer(path)` both "
            "load it.", "", "## Usage", "", "```python",
            "from sentence_transformers import SentenceTransformer  # or: from sentsim import SentenceTransformer",
            "", f"model = SentenceTransformer({json.dumps(card.model_id or model_id or PLACEHOLDER_ID)})",
            'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
            "similarities = model.similarity(embeddings, embeddings)", "```", "",
            "## 0–5 scores", "", scores, ""]
    body += _datasets_section("Training data", card.train_datasets)
    body += _datasets_section("Evaluation data", card.eval_datasets)
    body += _evaluation_section(card)
    return "\n".join(front + body)


def _yaml_list(key: str, items: list[str]) -> list[str]:
    """A YAML list of JSON strings (valid YAML, whatever the text holds); nothing when empty."""
    return [f"{key}:"] + [f"- {json.dumps(item)}" for item in items] if items else []


def _datasets_section(title: str, datasets: list[dict[str, str]]) -> list[str]:
    if not datasets:
        return []
    lines = [f"## {title}", ""]
    for entry in datasets:
        name, hub_id = entry.get("name"), entry.get("id")
        link = f"[{hub_id}](https://huggingface.co/datasets/{hub_id})" if hub_id and _HUB_ID.match(hub_id) else hub_id
        lines.append(f"- {' — '.join(part for part in (name, link) if part)}")
    return [*lines, ""]


def _evaluation_section(card: ModelCardData) -> list[str]:
    metrics = card.latest_metrics()
    if not metrics:
        return ["## Limitations", "",
                "No training run or evaluation is recorded with this folder, so no scores are reported here; "
                "evaluate it with `sentsim evaluate MODEL` on your own pairs before relying on it.", ""]
    names = ", ".join(dict.fromkeys(f"{record['evaluator']}" + (f" ({record['name']})" if record["name"] else "")
                                    for record in card.evaluations))
    lines = ["## Evaluation", "", f"The last figures of the evaluators run on this model before it was saved: {names}.",
             "", "| metric | value |", "| --- | ---: |"]
    lines += [f"| {_cell(key)} | {_figure(value)} |" for key, value in metrics.items()]
    return [*lines, ""]


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a "|" in it would start another cell."""
    return text.replace("|", "\\|")


def _figure(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"
