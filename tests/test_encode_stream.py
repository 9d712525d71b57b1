"""sentsim encode: one row per line (\\n only), blank lines refused or kept, outputs checked before encoding,
never over the input, JSONL with ids, progress lines in a redirected log, and memory bounded by the chunk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sentsim.cli import EXIT_OK
from sentsim.progress import ProgressLog

from .cli_support import assert_one_line_error, run_cli

LINES = ["a man is playing a flute", "a dog\fis running", "the red\x1ccar", "a cat\x85eating", "two\u2028children"]


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def _fail_if_encoding(monkeypatch) -> None:
    """Makes any model load fail loudly: a refusal must come before the model runs."""
    from sentsim.cli import common

    monkeypatch.setattr(common, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))


def test_one_row_per_line_splitting_at_newline_only(capsys, tmp_path, model_dir, tiny_model):
    source = _write(tmp_path / "lines.txt", "\n".join(LINES) + "\r\n")
    output = tmp_path / "out.npy"
    code, out, err = run_cli(capsys, "encode", model_dir, source, "-o", output, "--quiet", "--chunk-lines", "2")
    assert code == EXIT_OK, err
    rows = np.load(output)
    assert rows.shape == (len(LINES), 32)
    from sentsim.encoders.bi_encoder import SentenceTransformer

    expected = SentenceTransformer(str(model_dir)).encode(LINES)
    np.testing.assert_allclose(rows, expected, atol=1e-5)
    assert f"wrote {len(LINES)} × 32" in out


def test_blank_lines_are_refused_with_their_numbers_or_kept_with_allow_blank(capsys, tmp_path, model_dir):
    source = _write(tmp_path / "gaps.txt", "a dog\n\na cat\n   \nthe car")
    output = tmp_path / "gaps.npy"
    code, _, err = run_cli(capsys, "encode", model_dir, source, "-o", output, "--quiet")
    assert_one_line_error(code, err, f"{source}, line 2", "2 blank line(s) (lines 2, 4)", "--allow-blank")
    assert not output.exists()
    code, out, err = run_cli(capsys, "encode", model_dir, source, "-o", output, "--quiet", "--allow-blank")
    assert code == EXIT_OK, err
    rows = np.load(output)
    assert rows.shape == (5, 32)
    np.testing.assert_allclose(rows[1], rows[3], atol=1e-6)  # both encoded as the empty text
    assert "2 blank line(s)" in out


def test_input_ending_in_npy_is_never_overwritten(capsys, tmp_path, model_dir):
    source = _write(tmp_path / "lines.npy", "a dog\na cat\n")
    code, _out, err = run_cli(capsys, "encode", model_dir, source, "--quiet")
    assert code == EXIT_OK, err
    assert source.read_text() == "a dog\na cat\n"
    assert np.load(tmp_path / "lines.embeddings.npy").shape == (2, 32)
    for target in (source, tmp_path / "link.npy"):
        if target != source:
            os.link(source, target)
        code, _, err = run_cli(capsys, "encode", model_dir, source, "-o", target, "--force", "--quiet")
        assert_one_line_error(code, err, "is the input file")
    assert source.read_text() == "a dog\na cat\n"


def test_existing_output_needs_force(capsys, tmp_path, model_dir, monkeypatch):
    source = _write(tmp_path / "in.txt", "a dog\n")
    existing = tmp_path / "in.npy"
    existing.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "encode", model_dir, source, "--quiet")
    assert_one_line_error(code, err, str(existing), "already exists", "--force")
    assert existing.read_bytes() == b"precious"
    code, _, err = run_cli(capsys, "encode", model_dir, source, "--quiet", "--force")
    assert code == EXIT_OK, err
    assert np.load(existing).shape == (1, 32)


def test_bad_outputs_fail_before_the_model_runs(capsys, tmp_path, model_dir, monkeypatch):
    source = _write(tmp_path / "in.txt", "a dog\n")
    _fail_if_encoding(monkeypatch)
    cases = [(tmp_path / "missing" / "out.npy", "does not exist"), (tmp_path, "is a folder"),
             (tmp_path / "out.txt", ".npy or .jsonl")]
    for target, reason in cases:
        code, _, err = run_cli(capsys, "encode", model_dir, source, "-o", target, "--quiet")
        assert_one_line_error(code, err, reason)
    code, _, err = run_cli(capsys, "encode", model_dir, _write(tmp_path / "blank.txt", "a\n\n"), "-o",
                           tmp_path / "b.npy")
    assert_one_line_error(code, err, "line 2")
    code, _, err = run_cli(capsys, "encode", model_dir, tmp_path / "bin.txt", "-o", tmp_path / "d.npy")
    assert_one_line_error(code, err, "no such file")
    (tmp_path / "bin.txt").write_bytes(b"fine\n\xff\xfe broken\n")
    code, _, err = run_cli(capsys, "encode", model_dir, tmp_path / "bin.txt", "-o", tmp_path / "d.npy")
    assert_one_line_error(code, err, "bin.txt, line 2", "not UTF-8")
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*tmp-*"))


def test_jsonl_output_has_line_numbers_as_ids(capsys, tmp_path, model_dir):
    source = _write(tmp_path / "in.txt", "a dog\n\na cat\n")
    output = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "encode", model_dir, source, "-o", output, "--allow-blank", "--quiet",
                           "--chunk-lines", "2")
    assert code == EXIT_OK, err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [record["id"] for record in records] == [1, 2, 3]
    assert all(len(record["embedding"]) == 32 for record in records)


def test_progress_lines_in_a_redirected_log(capsys):
    log = ProgressLog(30_000, desc="encoding x.txt", unit="lines", quiet=None)
    for _ in range(3):
        log.update(10_000)
    log.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("encoding x.txt: 10,000 / 30,000 lines (33%), ")
    assert "lines/s" in lines[0] and lines[-1].startswith("encoding x.txt: 30,000 / 30,000 lines (100%)")
    assert len(lines) == 3
    quiet = ProgressLog(10, desc="x", quiet=True)
    quiet.update(10)
    quiet.close()
    assert capsys.readouterr().err == ""


class _FakeEncoder:
    """A torch-free stand-in (the ONNX backend's interface): 64 numbers per line, instantly."""

    backend = "onnx"

    def embed(self, sentences, **options):
        return np.full((len(sentences), 64), 0.5, dtype=np.float32)


def _traced_peak(tmp_path: Path, lines: int) -> int:
    import tracemalloc

    from sentsim.inference.encode_stream import encode_lines, scan_lines

    source = tmp_path / f"{lines}.txt"
    with open(source, "w", encoding="utf-8") as handle:
        handle.writelines(f"sentence number {index}\n" for index in range(lines))
    tracemalloc.start()
    try:
        result = encode_lines(_FakeEncoder(), scan_lines(source), tmp_path / f"{lines}.npy", chunk_lines=5_000,
                              quiet=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.rows == lines
    assert np.load(tmp_path / f"{lines}.npy", mmap_mode="r").shape == (lines, 64)
    return peak


def test_streaming_holds_one_chunk_not_the_file(tmp_path):
    # 200,000 × 64 float32 rows are 51 MB and the lines another 20-odd MB; one chunk is a fortieth.
    small, large = _traced_peak(tmp_path, 20_000), _traced_peak(tmp_path, 200_000)
    assert large <= 1.2 * small, (small, large)


_CHILD = """
import resource, sys
from sentsim.cli import main
code = main(["encode", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "--chunk-lines", "1000", "--batch-size", "256"])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
sys.exit(code)
"""


def _peak_rss_kib(model_dir: Path, source: Path, output: Path) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(model_dir), str(source), str(output)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "SENTSIM_QUIET": ""})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1]), done.stderr


def test_peak_rss_of_the_command_does_not_grow_with_the_file(tmp_path, model_dir):
    # Small sizes keep this under a minute on a shared CPU; benchmarks/encode_memory.py does 20k vs 200k
    # with the bundled model.
    words = ["a dog", "the red car", "two children are playing", "a cat"]
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("".join(f"{words[i % 4]} {i}\n" for i in range(1_000)))
    large.write_text("".join(f"{words[i % 4]} {i}\n" for i in range(10_000)))
    small_rss, _ = _peak_rss_kib(model_dir, small, tmp_path / "small.npy")
    large_rss, log = _peak_rss_kib(model_dir, large, tmp_path / "large.npy")
    assert np.load(tmp_path / "large.npy", mmap_mode="r").shape == (10_000, 32)
    assert large_rss <= 1.2 * small_rss, (small_rss, large_rss)
    assert "encoding large.txt: 1,000 / 10,000 lines (10%)" in log  # progress in a redirected log
