"""The README.md ``SentenceTransformer.save`` writes when no training run describes the model.

``sentsim train`` writes the full card (``sentsim.reporting.model_card``); this one only says what the
folder is, how to load it and how to get 0–5 scores, so a saved folder is never without a card.
"""

from __future__ import annotations

import json
import re

_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


#: What sentence-transformers' cards load when the model has no hub id yet (``save`` without ``model_name``).
PLACEHOLDER_ID = "sentence_transformers_model_id"


def render_minimal_card(*, model_name: str, base_model: str, dimensions: int, max_seq_length: int,
                        pooling: str, calibrated: bool, model_id: str | None = None) -> str:
    """The card's text; ``model_id`` (``save(path, model_name=...)``, usually the hub id) goes in the
    usage snippet, else sentence-transformers' placeholder id, as their cards have it."""
    front = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity", "tags:",
             "- sentence-transformers", "- sentence-similarity", "- sentsim"]
    if _HUB_ID.match(base_model):
        front.append(f"base_model: {json.dumps(base_model)}")
    front.append("---")
    scores = ("`calibration.json` maps cosine to the 0–5 STS scale: `model.sts_score(a, b)` in sentsim."
              if calibrated else "No `calibration.json`: `sentsim calibrate MODEL --data PAIRS` fits the "
              "cosine → 0–5 map on scored pairs, after which `model.sts_score(a, b)` gives 0–5 scores.")
    body = ["", f"# {model_name}", "",
            f"A sentence-embedding model ({dimensions} dimensions, {pooling} pooling, inputs up to "
            f"{max_seq_length} tokens) saved by sentsim from {base_model}, in the sentence-transformers layout: "
            "`sentsim.SentenceTransformer(path)` and `sentence_transformers.SentenceTransformer(path)` both "
            "load it.", "", "## Usage", "", "```python",
            "from sentence_transformers import SentenceTransformer  # or: from sentsim import SentenceTransformer",
            "", f"model = SentenceTransformer({json.dumps(model_id or PLACEHOLDER_ID)})",
            'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument."])',
            "similarities = model.similarity(embeddings, embeddings)", "```", "",
            "## 0–5 scores", "", scores, "", "## Limitations", "",
            "No training run is recorded with this folder, so no scores are reported here; evaluate it with "
            "`sentsim evaluate MODEL` on your own pairs before relying on it.", ""]
    return "\n".join(front + body)
