"""s8 weights that cannot saturate AVX2's int8 multiply: the weight rows are re-paired, nothing is rounded.

ONNX Runtime multiplies u8 activations by s8 weights fastest. With VNNI (VPDPBUSD) every product is
summed in 32 bits, but on AVX2, and AVX-512 without VNNI, VPMADDUBSW first adds the products of weight
rows 2j and 2j+1 into a *saturating 16-bit* lane: ``a[2j]·w[2j] + a[2j+1]·w[2j+1]`` with ``a`` up to
255 exceeds 32,767 when the two weights of a pair have the same sign and magnitudes summing above 128,
and the output is then silently wrong (checked on onnxruntime 1.32 with CPUID capped at AVX2). Which
rows form a pair is only an order: :func:`safe_row_order` finds an order of the K rows in which no
pair can overflow, and :func:`reorder_integer_gemms` applies it to each weight matrix and, with a
Gather of the same order, to the activations feeding it. The product is the same sum in another
order: alone, this file computes exactly what the VNNI file does (bit-identical embeddings on a VNNI
CPU). ``sentsim.export.stream_order`` first puts the hidden stream itself in a safe order, and
``sentsim.export.head_order`` each head's value features, so only the few GEMMs left (for
all-MiniLM-L6-v2, 2 of 24) need a Gather here.

Measured with AVX2 kernels (CPUID capped, all-MiniLM-L6-v2, STSb test sentences): with a Gather before
17 of the 24 GEMMs, 1.13x the speed of u8 weights (which ORT widens to 16 bits first, so they cannot
overflow), test Spearman 81.84 against 81.93; with the stream order and 6 Gathers left, 1.21x; with
the head order too and 2 left, 1.26x, 81.76 (requantising after layer norms summed in another order
moves Spearman by a few hundredths either way: 81.85 and 81.88 for the VNNI file in two orders). The
same s8 file without any reordering is 1.31x, but can overflow. Shrinking the over-large pairs
instead of re-pairing them cost 0.17 Spearman.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentsim.export.onnx_graph import GraphIndex

#: Same-sign weight magnitudes of one pair may sum to this much: 255 · 128 = 32,640 fits in 16 bits.
PAIR_LIMIT = 128


def _safe(weights: np.ndarray, first: int, second: int) -> bool:
    a, b = weights[first], weights[second]
    return not np.any((np.sign(a) == np.sign(b)) & (np.abs(a) + np.abs(b) > PAIR_LIMIT))


def safe_row_order(weights: np.ndarray, *, seed: int = 0) -> np.ndarray | None:
    """An order of the rows of ``weights`` (s8, K x N) in which rows 2j and 2j+1 never overflow; None if
    the rows are already safe as they are (nothing to change).

    Each unsafe pair trades a partner with another pair, tried in a fixed pseudo-random order, until
    both new pairs are safe. Over-large weights are rare (all-MiniLM-L6-v2: a few hundred unsafe pairs
    among 2.6 M), so a trade is found within a few tries. Where one is not (a row with a single possible
    partner, taken by another), :func:`_matched_order` pairs the rows by a bipartite matching instead.
    Raises ValueError if that finds none either (a row that overflows with every other, or rows almost
    all large), so the caller can keep another weight type rather than a wrong file.
    """
    values = weights.astype(np.int16)
    rows = values.shape[0]
    pairs = [[2 * j, 2 * j + 1] for j in range(rows // 2)]
    unsafe = [index for index, (a, b) in enumerate(pairs) if not _safe(values, a, b)]
    if not unsafe:
        return None
    generator = np.random.default_rng(seed)
    for index in unsafe:
        first, second = pairs[index]
        if _safe(values, first, second):  # an earlier trade already mended it
            continue
        for other in generator.permutation(len(pairs)):
            if other == index:
                continue
            third, fourth = pairs[other]
            if _safe(values, first, third) and _safe(values, second, fourth):
                pairs[index], pairs[other] = [first, third], [second, fourth]
                break
            if _safe(values, first, fourth) and _safe(values, second, third):
                pairs[index], pairs[other] = [first, fourth], [second, third]
                break
        else:
            return _matched_order(values)
    order = [row for pair in pairs for row in pair] + list(range(2 * len(pairs), rows))  # an odd last row stays
    return np.asarray(order, dtype=np.int64)


def _matched_order(values: np.ndarray) -> np.ndarray:
    """A safe order from a matching: each large row gets its own safe small partner; raises ValueError if
    some large row cannot have one and no large partner is left for it either.

    A row is large when one of its weights exceeds half the limit; two small rows are always safe
    together, so only the large rows need partners. Large rows with the fewest candidates choose
    first, and a row whose candidates are all taken moves a chosen partner along an augmenting path
    (Kuhn's bipartite matching, breadth-first), so a row with one possible partner still gets it.
    """
    rows = values.shape[0]
    large = np.flatnonzero(np.abs(values).max(axis=1) > PAIR_LIMIT // 2)
    small = np.setdiff1d(np.arange(rows), large)
    candidates = {int(row): [int(other) for other in small[_safe_with(values, row, small)]] for row in large}
    partner_of: dict[int, int] = {}  # small row -> the large row it is paired with
    alone: list[int] = []
    for row in sorted(candidates, key=lambda row: len(candidates[row])):
        if not _augment(row, candidates, partner_of):
            alone.append(row)
    pairs = [[large_row, small_row] for small_row, large_row in partner_of.items()]
    while alone:  # large rows with no small partner left: pair them with each other where safe
        row = alone.pop(0)
        other = next((other for other in alone if _safe(values, row, other)), None)
        if other is not None:
            alone.remove(other)
            pairs.append([row, other])
        elif rows % 2 and not any(len(pair) == 1 for pair in pairs):
            pairs.append([row])  # an odd count leaves one row alone: at the end it pairs with nothing
        else:
            raise ValueError(f"no order of these {rows} weight rows keeps every pair within {PAIR_LIMIT}")
    paired = {row for pair in pairs for row in pair}
    rest = [int(row) for row in small if row not in paired]
    lone = [pair[0] for pair in pairs if len(pair) == 1]
    order = [row for pair in pairs if len(pair) == 2 for row in pair] + rest + lone
    return np.asarray(order, dtype=np.int64)


def _safe_with(values: np.ndarray, row: int, others: np.ndarray) -> np.ndarray:
    """Which of the rows ``others`` can pair with ``row`` (a bool per row)."""
    a, b = values[row], values[others]
    return ~np.any((np.sign(a) == np.sign(b)) & (np.abs(a) + np.abs(b) > PAIR_LIMIT), axis=1)


def _augment(row: int, candidates: dict[int, list[int]], partner_of: dict[int, int]) -> bool:
    """Finds ``row`` a small partner, moving earlier choices along an alternating path; False if none can be."""
    parent: dict[int, tuple[int, int | None]] = {}  # small row reached -> (large row that reached it, its old small)
    frontier, seen = [(row, None)], {row}
    while frontier:
        following = []
        for large_row, came_by in frontier:
            for small_row in candidates[large_row]:
                if small_row in parent:
                    continue
                parent[small_row] = (large_row, came_by)
                holder = partner_of.get(small_row)
                if holder is None:  # free: flip the path back to ``row``
                    while True:
                        owner, previous = parent[small_row]
                        partner_of[small_row] = owner
                        if previous is None:
                            return True
                        small_row = previous
                if holder not in seen:
                    seen.add(holder)
                    following.append((holder, small_row))
        frontier = following
    return False


def reorder_integer_gemms(model: Any) -> int:
    """Gives every integer GEMM of the ONNX ``model`` (in memory) a saturation-free row order; returns how
    many changed.

    A GEMM here is ``MatMulInteger`` or ORT's fused ``QAttention`` (weights K x N at input 1) fed by its own
    ``DynamicQuantizeLinear``. Its weight rows are reordered and a Gather with the same order goes in
    front of that quantizer (whose scale and zero point do not depend on the order). A quantizer
    feeding several GEMMs is left alone rather than guessed at.
    """
    from onnx import helper, numpy_helper

    index = GraphIndex(model)
    changed, new_nodes = 0, []
    for node in index.graph.node:
        if node.op_type not in ("MatMulInteger", "QAttention") or len(node.input) < 2:
            continue
        weight_name, quantizer = node.input[1], index.producers.get(node.input[0])
        if (weight_name not in index.initializers or quantizer is None
                or quantizer.op_type != "DynamicQuantizeLinear"
                or len(index.consumers.get(quantizer.output[0], [])) != 1):
            continue
        weights = numpy_helper.to_array(index.initializers[weight_name])
        if weights.dtype != np.int8 or weights.ndim != 2:
            continue
        order = safe_row_order(weights)
        if order is None:
            continue
        index.initializers[weight_name].CopyFrom(numpy_helper.from_array(weights[order], weight_name))
        order_name, reordered = f"{weight_name}_row_order", f"{quantizer.input[0]}_reordered_for_{weight_name}"
        index.graph.initializer.append(numpy_helper.from_array(order, order_name))
        new_nodes.append((quantizer, helper.make_node("Gather", [quantizer.input[0], order_name], [reordered],
                                                      axis=-1, name=f"{weight_name}_row_order_gather")))
        quantizer.input[0] = reordered
        changed += 1
    for quantizer, gather in new_nodes:  # each Gather just before its quantizer keeps the graph sorted
        position = list(index.graph.node).index(quantizer)
        index.graph.node.insert(position, gather)
    if changed:
        model.CopyFrom(index.model)
    return changed
