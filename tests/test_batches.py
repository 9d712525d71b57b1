"""Padding-aware length-sorted batching: every sentence once, within the size cap, cut where padding costs most."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentsim.inference.batches import length_sorted_batches


def padded_cost(batches: list[list[int]], lengths: list[int], overhead: int) -> int:
    return sum(overhead + len(batch) * max(lengths[index] for index in batch) for batch in batches)


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 512), max_size=300), batch_size=st.integers(1, 64),
       overhead=st.integers(0, 200))
def test_every_index_once_within_the_cap_longest_first_and_never_costlier_than_plain_chunks(
        lengths, batch_size, overhead):
    batches = list(length_sorted_batches(lengths, batch_size, run_overhead=overhead))
    assert sorted(index for batch in batches for index in batch) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= batch_size for batch in batches)
    flat = [lengths[index] for batch in batches for index in batch]
    assert flat == sorted(flat, reverse=True)  # longest first, so the biggest batch runs first
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    plain = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    assert padded_cost(batches, lengths, overhead) <= padded_cost(plain, lengths, overhead)


def test_even_lengths_run_in_full_batches():
    assert sorted(len(batch) for batch in length_sorted_batches([12] * 100, 32, run_overhead=16)) == [4, 32, 32, 32]


def test_a_mixed_server_batch_is_cut_where_the_lengths_jump():
    lengths = [60] * 4 + [10] * 28  # 32 sentences: padding all to 60 would do 1,920 token-steps for 520
    batches = list(length_sorted_batches(lengths, 32, run_overhead=16))
    assert [len(batch) for batch in batches] == [4, 28]
    assert padded_cost(batches, lengths, 0) == sum(lengths)


def test_without_an_overhead_the_cut_is_plain_chunks_of_the_sorted_order():
    lengths = [5, 30, 12, 7, 30, 9, 1]
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    assert list(length_sorted_batches(lengths, 3)) == [order[0:3], order[3:6], order[6:]]


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        list(length_sorted_batches([3, 4], 0))
