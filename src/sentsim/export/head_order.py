"""Saturation-free rows for the attention output GEMMs, by re-ordering each head's value features.

After ``sentsim.export.stream_order`` the GEMMs still fed by a Gather (``sentsim.export.pairing``) are
mostly the attention output projections: their input is the attention context (the heads' weighted
values side by side), not the hidden stream. Within one head the order of the value features is
arbitrary: permuting that head's columns of the V projection (and its bias) permutes the same
features of the context, and nothing else. :func:`permute_attention_values` picks, head by head, an
order in which the output projection's weight rows pair safely, stores the V columns and the output
rows in it, and so lets those GEMMs run without a Gather. Pairs never cross a head (head sizes are even).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentsim.export.onnx_graph import GraphIndex
from sentsim.export.pairing import safe_row_order

#: The fused attention ops (int8 and fp32): weights K x 3H (Q | K | V) at input 1, bias 3H at input 2.
ATTENTIONS = frozenset({"QAttention", "Attention"})


def _head_order(weights: np.ndarray, heads: int) -> np.ndarray | None:
    """Rows of ``weights`` (H x N) in a safe order that keeps each head's rows together; None if already safe."""
    size = weights.shape[0] // heads
    if size % 2 or size * heads != weights.shape[0]:
        return None
    blocks = [safe_row_order(weights[head * size:(head + 1) * size]) for head in range(heads)]
    if all(block is None for block in blocks):
        return None
    return np.concatenate([head * size + (np.arange(size) if block is None else block)
                           for head, block in enumerate(blocks)])


def _output_projection(graph: GraphIndex, attention) -> str | None:
    """The private weight of the one GEMM reading ``attention``'s context (through its quantiser, if any)."""
    readers = graph.consumers.get(attention.output[0], [])
    if len(readers) != 1 or attention.output[0] in graph.graph_outputs:
        return None
    node, index = readers[0]
    if node.op_type == "DynamicQuantizeLinear":
        readers = graph.consumers.get(node.output[0], [])
        if len(readers) != 1:
            return None
        node, index = readers[0]
    if node.op_type not in ("MatMulInteger", "MatMul") or index != 0:
        return None
    weight = node.input[1]
    return weight if len(graph.shapes.get(weight, ())) == 2 and len(graph.consumers[weight]) == 1 else None


def permute_attention_values(model: Any, *, orders: dict[str, np.ndarray] | None = None) -> int:
    """Re-orders each head's value features in the ONNX ``model`` (in memory) so its output GEMM pairs safely.

    ``orders`` forces an order per attention node name (tests); by default each comes from
    :func:`safe_row_order` on the output projection's s8 rows, head by head. Returns how many
    attention layers changed.
    """
    import onnx
    from onnx import numpy_helper

    graph = GraphIndex(model)
    changed = 0
    for node in graph.graph.node:
        if node.op_type not in ATTENTIONS or len(node.input) < 3:
            continue
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        heads, sizes = attributes.get("num_heads"), attributes.get("qkv_hidden_sizes")
        weight_name, bias_name, output_name = node.input[1], node.input[2], _output_projection(graph, node)
        if (not heads or output_name is None or (sizes and len(set(sizes)) != 1)
                or weight_name not in graph.initializers or bias_name not in graph.initializers):
            continue
        weights = numpy_helper.to_array(graph.initializers[weight_name])
        bias = numpy_helper.to_array(graph.initializers[bias_name])
        output = numpy_helper.to_array(graph.initializers[output_name])
        hidden = output.shape[0]
        if weights.shape[-1] != 3 * hidden or bias.shape != (3 * hidden,):
            continue
        if orders is not None:
            order = orders.get(node.name)
        elif output.dtype == np.int8:
            try:
                order = _head_order(output, int(heads))
            except ValueError:  # a head without a safe order: its GEMM keeps its Gather
                order = None
        else:
            order = None
        if order is None:
            continue
        columns = np.concatenate([np.arange(2 * hidden), 2 * hidden + order])
        for name, array in ((weight_name, weights[:, columns]), (bias_name, bias[columns]),
                            (output_name, output[order])):
            graph.initializers[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), name))
        changed += 1
    if changed:
        model.CopyFrom(graph.model)
    return changed
