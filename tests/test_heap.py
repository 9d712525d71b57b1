"""Training keeps big freed blocks in the heap (glibc), and puts glibc's defaults back afterwards."""

from __future__ import annotations

import ctypes
import platform

import pytest
import torch

from sentsim.training import TrainConfig, train
from sentsim.training.heap import keep_freed_memory

from .conftest import TRAIN_PAIRS

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the lever is glibc's")
BIG = 48 * 2**20  # over glibc's largest mmap threshold (32 MiB): always mmapped by default


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mmapped_bytes() -> int:
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc before 2.33 has no mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def _mmapped_while_holding_a_big_tensor() -> int:
    before = _mmapped_bytes()
    block = torch.empty(BIG // 4, dtype=torch.float32)
    grown = _mmapped_bytes() - before
    del block
    return grown


@glibc_only
def test_big_blocks_come_from_the_heap_inside_and_from_mmap_again_after(monkeypatch) -> None:
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        monkeypatch.delenv(name, raising=False)
    assert _mmapped_while_holding_a_big_tensor() >= BIG
    with keep_freed_memory() as applied:
        assert applied is True
        assert _mmapped_while_holding_a_big_tensor() == 0
    assert _mmapped_while_holding_a_big_tensor() >= BIG  # defaults restored


@glibc_only
@pytest.mark.parametrize("case", ["disabled", "cuda", "user tuning"])
def test_it_stays_out_of_the_way(monkeypatch, case: str) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    if case == "user tuning":  # the user's own allocator settings stand
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    with keep_freed_memory(enabled=case != "disabled", device_type="cuda" if case == "cuda" else "cpu") as applied:
        assert applied is False
        assert _mmapped_while_holding_a_big_tensor() >= BIG


def test_training_learns_the_same_with_and_without_it(tiny_transformer_dir) -> None:
    from sentsim import SentenceTransformer

    sentences_a, sentences_b, labels = (list(column) for column in zip(*TRAIN_PAIRS, strict=True))
    weights = []
    for keep in (True, False):
        model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
        train(model, sentences_a=sentences_a, sentences_b=sentences_b, labels=labels, quiet=True,
              config=TrainConfig(batch_size=2, epochs=2, learning_rate=1e-3, dtype="fp32", keep_freed_memory=keep))
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
