"""sentsim similarity with texts typed in: empty ones refused like in pair files, long ones cut with a warning,
and -o checked before the model runs."""

from __future__ import annotations

import pytest

from sentsim.cli import EXIT_OK

from .cli_support import assert_one_line_error, pair_file, run_cli


@pytest.mark.parametrize(("first", "second", "reason"), [
    ("", "", "the first text is empty"),
    ("a dog", "   \t", "the second text is whitespace only"),
    ("\n", "a cat", "the first text is whitespace only"),
])
def test_empty_texts_are_refused(capsys, model_dir, first, second, reason):
    code, out, err = run_cli(capsys, "similarity", model_dir, first, second)
    assert_one_line_error(code, err, reason)
    assert out == ""


def test_a_text_longer_than_the_model_reads_is_cut_with_a_warning(capsys, model_dir):
    long_text = " ".join(["the dog is running in the park"] * 20)  # 140 words, the tiny model reads 64 tokens
    code, out, err = run_cli(capsys, "similarity", model_dir, long_text, "a dog")
    assert code == EXIT_OK, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("warning: the model reads at most 64 tokens per text; the first text has 142 "
                               "tokens, 78 cut"), lines[0]
    assert "cosine" in out
    code, _, err = run_cli(capsys, "similarity", model_dir, "a dog runs", "a dog")
    assert code == EXIT_OK and err == ""


def test_similarity_output_is_checked_before_the_model_loads(capsys, tmp_path, model_dir):
    pairs = pair_file(tmp_path / "pairs.tsv")
    code, _, err = run_cli(capsys, "similarity", model_dir, "--pairs", pairs, "-o", pairs, "--force")
    assert_one_line_error(code, err, "is the input file")
    existing = tmp_path / "scores.csv"
    existing.write_text("mine")
    code, _, err = run_cli(capsys, "similarity", model_dir, "a dog", "a cat", "-o", existing)
    assert_one_line_error(code, err, "already exists", "--force")
    assert existing.read_text() == "mine"
    code, _, err = run_cli(capsys, "similarity", model_dir, "a dog", "a cat", "-o", existing, "--force")
    assert code == EXIT_OK, err
    assert existing.read_text().startswith("sentence1")
    code, _, err = run_cli(capsys, "similarity", model_dir, "a dog", "a cat", "-o", tmp_path / "no" / "s.csv")
    assert_one_line_error(code, err, "does not exist")
