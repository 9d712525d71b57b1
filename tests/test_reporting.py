"""Tests for sentsim.reporting: plots, report.md / report.html from a synthetic run folder, model card."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sentsim.errors import SentsimError
from sentsim.persistence.atomic import atomic_directory
from sentsim.reporting import (
    RunFolderError,
    plot_learning_curve,
    plot_scatter,
    render_model_card,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT_SENTENCE = "<script>alert('owned')</script> & friends"
PIPE_SENTENCE = "A pipe | in a *sentence* with [brackets]"
GENRES = ("news", "captions", "forum")


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def _metrics() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {"kind": "eval", "step": 0, "epoch": 0.0, "split": "dev", "spearman_cosine": 82.0, "pearson_cosine": 81.5}
    ]
    for step in range(10, 101, 10):
        records.append(
            {
                "kind": "train",
                "step": step,
                "epoch": step / 100,
                "loss": 2.0 / math.sqrt(step),
                "lr": 2e-5,
                "pairs_per_second": 300.0,
            }
        )
        if step % 50 == 0:
            records.append(
                {
                    "kind": "eval",
                    "step": step,
                    "epoch": step / 100,
                    "split": "dev",
                    "spearman_cosine": 82.0 + step / 20,
                    "pearson_cosine": 81.0 + step / 20,
                }
            )
    return records


def _predictions(count: int = 60) -> list[dict[str, Any]]:
    rows = []
    for index in range(count):
        gold = round(5 * index / (count - 1), 2)
        cosine = max(-0.1, min(1.0, gold / 5 + 0.1 * math.sin(index)))
        rows.append(
            {
                "sentence1": f"first sentence {index}",
                "sentence2": f"second sentence {index}",
                "genre": GENRES[index % 3],
                "gold": gold,
                "cosine": cosine,
                "calibrated": min(5.0, max(0.0, gold + 0.3 * math.cos(index))),
            }
        )
    # Far off in both directions, so they are certainly in the top 20.
    rows[0].update(sentence1=SCRIPT_SENTENCE, gold=0.0, cosine=0.95, calibrated=4.9)
    rows[-1].update(sentence2=PIPE_SENTENCE, gold=5.0, cosine=0.05, calibrated=0.2)
    return rows


def _summary() -> dict[str, Any]:
    return {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "loss": "cosent",
        "best_step": 100,
        "dev": {"spearman_cosine": 87.0, "pearson_cosine": 86.5},
        "test": {"spearman_cosine": 84.2, "pearson_cosine": 84.0},
        "dev_ci": {"spearman_cosine": [86.1, 87.8]},
        "test_ci": {"spearman_cosine": [83.1, 85.3]},
        "base": {
            "dev": {"spearman_cosine": 82.0, "pearson_cosine": 81.5},
            "test": {"spearman_cosine": 82.0, "pearson_cosine": 82.6},
        },
        "per_genre": {
            "test": {
                "news": {"base": 80.0, "trained": 83.0},
                "captions": {"base": 86.0, "trained": 88.5},
                "forum": {"base": 70.0, "trained": 74.0},
            }
        },
        "calibration": {"mae_cosine_x5": 0.91, "mae_calibrated": 0.62, "fitted_on": "dev"},
        "timing": {"wall_seconds": 754.2, "train_seconds": 600.0, "pairs_per_second": 310.5, "peak_rss_mb": 1834.0},
        "command": "sentsim train --loss cosent --epochs 1",
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run-2024"
    (folder / "model").mkdir(parents=True)
    config = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "loss": "cosent",
        "batch_size": 16,
        "learning_rate": 2e-5,
        "epochs": 1,
        "warmup_ratio": 0.1,
        "seed": 42,
        "data": "stsb",
        "versions": {"sentsim": "0.1.0", "torch": "2.13.0"},
        "machine": {"cpu": "test", "threads": 2},
        "pairs": {"train": 5749, "dev": 1500},
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(_summary()), encoding="utf-8")
    _write_jsonl(folder / "metrics.jsonl", _metrics())
    _write_jsonl(folder / "predictions.jsonl", _predictions())
    calibration = {"kind": "isotonic", "x": [-0.1, 0.2, 0.5, 0.8, 1.0], "y": [0.0, 1.0, 2.5, 4.0, 5.0]}
    (folder / "model" / "calibration.json").write_text(json.dumps(calibration), encoding="utf-8")
    return folder


class _PageParser(HTMLParser):
    """Collects what the tests check: resource links, script tags, and the text of every table."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.script_tags = 0
        self.tables: list[list[list[str]]] = []  # table → rows → cell texts
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        self.links += [value for name, value in attrs if name in {"src", "href"} and value]
        if tag == "script":
            self.script_tags += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(html_text: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html_text)
    parser.close()
    return parser


def test_write_report_files_and_images(run_dir: Path) -> None:
    html_path, markdown_path = write_report(run_dir)
    assert html_path == run_dir / "report.html"
    assert markdown_path == run_dir / "report.md"
    for name in ("learning_curve.png", "scatter.png"):
        data = (run_dir / "plots" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert 1_000 < len(data) < 150_000
    assert not list(run_dir.glob(".*")), "no temporary files left behind"


def test_html_is_self_contained_and_escaped(run_dir: Path) -> None:
    html_text = write_report(run_dir)[0].read_text(encoding="utf-8")
    page = _parse(html_text)
    assert len(page.images) == 2
    for source in page.images:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix) :], validate=True).startswith(PNG_SIGNATURE)
    assert not [link for link in page.links if re.match(r"(https?:)?//", link)], "no network resources"
    assert "http://" not in html_text and "https://" not in html_text
    assert page.script_tags == 0, "the <script> sentence must be text, not markup"
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt; &amp; friends" in html_text

    errors = next(table for table in page.tables if table[0][:3] == ["#", "Genre", "Sentence 1"])
    assert len(errors) == 1 + 20
    cells = [cell for row in errors for cell in row]
    assert SCRIPT_SENTENCE in cells and PIPE_SENTENCE in cells
    ranks = [abs(float(row[-1])) for row in errors[1:]]
    assert ranks == sorted(ranks, reverse=True)
    # Calibrated scores are used when present: the <script> pair predicted 4.9 against gold 0.
    script_row = next(row for row in errors if row[2] == SCRIPT_SENTENCE)
    assert script_row[6:] == ["4.90", "+4.90"]

    text = " ".join(cell for table in page.tables for row in table for cell in row)
    for expected in ("84.20", "[83.10, 85.30]", "+2.20", "captions", "12 min 34 s", "310.5 pairs/s", "1,834 MB"):
        assert expected in text
    assert "0.910" in text and "0.620" in text
    assert "sentsim train --loss cosent --epochs 1" in html_text
    assert ["train", "5749"] in [row for table in page.tables for row in table], "nested config parts shown"


def test_markdown_links_and_escaping(run_dir: Path) -> None:
    markdown = write_report(run_dir)[1].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links == ["plots/learning_curve.png", "plots/scatter.png"]
    assert all((run_dir / link).is_file() for link in links)
    assert "<script>" not in markdown
    assert r"A pipe \| in a \*sentence\* with \[brackets\]" in markdown
    error_lines = [line for line in markdown.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert len(error_lines) == 20
    assert all(line.count(" | ") == 7 for line in error_lines), "escaped pipes keep 8 columns"


def test_optional_parts_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    summary = {"dev": {"spearman_cosine": 80.0}, "test": {"spearman_cosine": 79.0}}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    _write_jsonl(folder / "predictions.jsonl", [dict(row, calibrated=None) for row in _predictions(25)])
    html_path, markdown_path = write_report(folder)
    page = _parse(html_path.read_text(encoding="utf-8"))
    assert len(page.images) == 1, "scatter only: no metrics.jsonl, so no learning curve"
    assert not (folder / "plots" / "learning_curve.png").exists()
    markdown = markdown_path.read_text(encoding="utf-8")
    assert "5 × cosine, clipped to 0–5" in markdown
    for absent in ("Timing", "Calibration", "by genre", "Command"):
        assert absent not in markdown


def test_report_written_inside_atomic_directory_uses_final_name(run_dir: Path, tmp_path: Path) -> None:
    final = tmp_path / "my-run"
    with atomic_directory(final) as building:
        shutil.copytree(run_dir, building, dirs_exist_ok=True)
        write_report(building)
    html_text = (final / "report.html").read_text(encoding="utf-8")
    assert "<title>sentsim run report: my-run</title>" in html_text
    assert "tmp-" not in html_text


def test_missing_summary_raises_typed_error(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match=r"summary\.json") as caught:
        write_report(tmp_path)
    assert isinstance(caught.value, SentsimError)
    with pytest.raises(RunFolderError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_malformed_line_names_file_and_line(run_dir: Path) -> None:
    with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "train", "step": \n')
    bad_line = len(_metrics()) + 1
    with pytest.raises(RunFolderError, match=rf"metrics\.jsonl, line {bad_line}:"):
        write_report(run_dir)
    assert not (run_dir / "report.html").exists()


def test_plots_standalone(tmp_path: Path) -> None:
    path = plot_learning_curve(_metrics(), tmp_path / "deep" / "curve.png", best_step=50)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    empty = plot_learning_curve([], tmp_path / "empty.png")
    assert empty.read_bytes().startswith(PNG_SIGNATURE)
    scatter = plot_scatter([0.0, 2.5, 5.0], [0.1, 0.5, 0.9], tmp_path / "scatter.png")
    assert scatter.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="gold has 1 values"):
        plot_scatter([1.0], [0.1, 0.2], tmp_path / "bad.png")
    if "matplotlib.pyplot" in sys.modules:
        assert not sys.modules["matplotlib.pyplot"].get_fignums(), "no figures left in pyplot state"


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    html_path, _ = write_report(run_dir)
    screenshot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={screenshot}", "--window-size=1200,2000",
         html_path.resolve().as_uri()],
        check=False, capture_output=True, timeout=120,
    )  # fmt: skip
    assert screenshot.is_file()
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000, "a blank page compresses to a few KB; the report has text and plots"


def _card(**overrides: Any) -> str:
    options: dict[str, Any] = {
        "model_name": "stsb-minilm-cosent",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "loss": "cosent",
        "data": "sentence-transformers/stsb",
        "hyperparameters": {"batch_size": 16, "learning_rate": 2e-5, "epochs": 1},
        "metrics": {"dev": {"spearman_cosine": 87.0123, "pearson_cosine": 86.5}, "test": {"spearman_cosine": 84.256}},
        "confidence_intervals": {"test": {"spearman_cosine": [83.1, 85.3]}},
        "command": "sentsim train --loss cosent",
        "dimensions": 384,
        "max_seq_length": 256,
        "pooling": "mean",
    }
    return render_model_card(**(options | overrides))


def _front_matter(card: str) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, "card starts with YAML front matter"
    return yaml.safe_load(match.group(1))


def test_model_card_front_matter() -> None:
    card = _card()
    meta = _front_matter(card)
    assert meta["library_name"] == "sentence-transformers"
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert meta["tags"] == ["sentence-transformers", "sentence-similarity", "feature-extraction", "sentsim"]
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["sentence-transformers/stsb"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "stsb-minilm-cosent"
    found = {
        (result["dataset"]["split"], metric["type"]): metric["value"]
        for result in entry["results"]
        for metric in result["metrics"]
    }
    assert found == {("dev", "spearman_cosine"): 87.01, ("dev", "pearson_cosine"): 86.5,
                     ("test", "spearman_cosine"): 84.26}  # fmt: skip
    for result in entry["results"]:
        assert result["task"]["type"] == "semantic-similarity"
        assert result["dataset"] == {"name": "STS Benchmark", "type": "sts", "split": result["dataset"]["split"]}


def test_model_card_body() -> None:
    card = _card()
    assert card.endswith("\n")
    assert "from sentsim import SentenceTransformer" in card
    assert "sentence-transformers" in card.split("---\n", 2)[2]
    assert "| test | Spearman (cosine) | 84.26 | [83.10, 85.30] |" in card
    assert "| batch\\_size | 16 |" in card
    assert "```bash\nsentsim train --loss cosent\n```" in card


def test_model_card_local_base_model_and_no_metrics() -> None:
    card = _card(base_model="/models/all-MiniLM-L6-v2", metrics={}, confidence_intervals=None)
    meta = _front_matter(card)
    assert "base_model" not in meta, "the Hub rejects a base_model that is not a repository id"
    assert "model-index" not in meta
    assert "/models/all-MiniLM-L6-v2" in card


def test_model_card_reads_with_hub_tooling() -> None:
    hub = pytest.importorskip("huggingface_hub")
    card = hub.ModelCard(_card())
    assert card.data.library_name == "sentence-transformers"
    results = {(result.dataset_split, result.metric_type): result.metric_value for result in card.data.eval_results}
    assert results[("test", "spearman_cosine")] == 84.26
