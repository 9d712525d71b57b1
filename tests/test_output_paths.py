"""check_output_path: an output file is refused before any work when writing there would fail or destroy data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentsim.errors import ConfigError
from sentsim.persistence.outputs import check_output_path


def test_a_new_file_in_an_existing_folder_is_fine(tmp_path: Path):
    assert check_output_path(tmp_path / "out.npy", force=False) == tmp_path / "out.npy"
    assert not (tmp_path / "out.npy").exists(), "checking writes nothing"


def test_a_folder_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_path(tmp_path, force=True)
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_path(f"{tmp_path / 'new'}/", force=True)


def test_a_missing_parent_folder_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"folder .*missing.* does not exist"):
        check_output_path(tmp_path / "missing" / "out.npy", force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_output_path(tmp_path / "file" / "out.npy", force=True)


def test_an_existing_file_needs_force(tmp_path: Path):
    existing = tmp_path / "out.npy"
    existing.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        check_output_path(existing, force=False, force_flag="--overwrite")
    assert check_output_path(existing, force=True) == existing
    assert existing.read_bytes() == b"keep me"


def test_the_input_itself_is_refused_even_with_force(tmp_path: Path):
    source = tmp_path / "lines.npy"
    source.write_text("a text file that happens to end in .npy\n")
    for output in (source, tmp_path / "." / "lines.npy"):
        with pytest.raises(ConfigError, match="is the input file"):
            check_output_path(output, force=True, inputs=[source])
    link = tmp_path / "link.npy"
    link.symlink_to(source)
    hard = tmp_path / "hard.npy"
    os.link(source, hard)
    for alias in (link, hard):
        with pytest.raises(ConfigError, match="is the input file"):
            check_output_path(alias, force=True, inputs=[source])
    assert check_output_path(tmp_path / "other.npy", force=False, inputs=[source]) == tmp_path / "other.npy"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_an_unwritable_folder_is_refused(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError, match="no permission"):
            check_output_path(locked / "out.npy", force=False)
    finally:
        locked.chmod(0o700)


def test_an_output_folder_may_not_be_or_hold_an_input(tmp_path: Path):
    from sentsim.persistence.outputs import check_folder_spares_inputs

    model = tmp_path / "work" / "model"
    model.mkdir(parents=True)
    data = tmp_path / "pairs.csv"
    data.write_text("x")
    for folder, word in ((model, "is"), (tmp_path / "work", "holds"), (tmp_path, "holds")):
        with pytest.raises(ConfigError, match=f"{word} the input"):
            check_folder_spares_inputs(folder, [model, None, "a-hub-name"])
    with pytest.raises(ConfigError, match="holds the input"):
        check_folder_spares_inputs(tmp_path, [data], flag="-o")
    check_folder_spares_inputs(model / "inside", [model, data])  # nothing of the inputs is replaced
    check_folder_spares_inputs(tmp_path / "elsewhere", [model, data, "a-hub-name"])
