"""One saturation-free order for a BERT's whole hidden stream, so its GEMMs need no Gather in front.

``sentsim.export.pairing`` makes each AVX2 int8 GEMM safe by reordering its weight rows and gathering
its input into the same order; those Gathers cost ~14 % of an encode on AVX2 kernels. But the
input of most GEMMs is the residual stream (the hidden states between layers), and the order of its
H features is arbitrary as long as every tensor on it agrees. :func:`permute_hidden_stream` gives the
stream one order P, chosen so that every GEMM *reading* it is safe: the embedding tables and layer-norm
parameters are stored in order P, the GEMMs that *write* to it get their output columns (and biases)
in order P, the readers get their weight rows in order P, and one Gather at the end puts the model's
output back in the original order. The model computes the same function; only float sums inside layer
norms run in another order.

The stream is found by following the graph from ``EmbedLayerNormalization`` through the operators a
fused BERT uses (quantisers, GEMMs, bias and residual ``Add``, ``LayerNormalization``). Anything else
on it, or a tensor shared where the rules cannot tell, leaves the file unchanged: the per-GEMM Gathers
then do the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentsim.export.onnx_graph import GraphIndex
from sentsim.export.pairing import safe_row_order

#: GEMMs with their weights (K x N) at input 1: ORT's integer ones and the float ones of a fused graph.
GEMMS = frozenset({"MatMulInteger", "QAttention", "MatMul", "Attention"})


class _NotAStream(Exception):
    """The graph does not have the shape the rules know; nothing is changed."""


@dataclass
class _Plan:
    hidden: int
    columns: set[str] = field(default_factory=set)     # initializers whose last axis is the stream's (H or N)
    rows: set[str] = field(default_factory=set)        # reader weights: rows (K) follow the stream
    outputs: set[str] = field(default_factory=set)     # graph outputs on the stream: gathered back at the end


def _plan(graph: GraphIndex) -> _Plan:
    embeddings = [node for node in graph.graph.node if node.op_type == "EmbedLayerNormalization"]
    if len(embeddings) != 1 or (len(embeddings[0].output) > 2 and embeddings[0].output[2]):
        raise _NotAStream("not one EmbedLayerNormalization without its sum output")
    node = embeddings[0]
    hidden = graph.shapes.get(node.input[5], (0,))[0]
    plan = _Plan(hidden=hidden)
    for index in (2, 3, 4, 5, 6):  # word, position, segment tables (… x H), gamma and beta (H)
        name = node.input[index] if len(node.input) > index else ""
        if name:
            if name not in graph.shapes or graph.shapes[name][-1] != hidden or len(graph.consumers[name]) != 1:
                raise _NotAStream(f"embedding input {name!r} is not a private table of width {hidden}")
            plan.columns.add(name)
    stream, pending = {node.output[0]}, [node.output[0]]
    while pending:
        tensor = pending.pop()
        if tensor in graph.graph_outputs:
            plan.outputs.add(tensor)
        for consumer, index in graph.consumers.get(tensor, []):
            for output in _follow(graph, plan, consumer, index, stream):
                if output not in stream:
                    stream.add(output)
                    pending.append(output)
    return plan


def _follow(graph: GraphIndex, plan: _Plan, node: Any, index: int, stream: set[str]) -> list[str]:
    """What ``node`` does with the stream tensor at its input ``index``: the stream tensors it makes."""
    hidden = plan.hidden
    if node.op_type == "DynamicQuantizeLinear":
        return [node.output[0]]
    if node.op_type in GEMMS and index == 0:
        weight = node.input[1]
        if len(graph.shapes.get(weight, ())) != 2 or len(graph.consumers[weight]) != 1:
            raise _NotAStream(f"{node.op_type} {node.name!r} has no private 2-D weight")
        plan.rows.add(weight)
        return []
    if node.op_type == "LayerNormalization" and index == 0:
        for name in node.input[1:3]:
            if not graph.vector(name, hidden):
                raise _NotAStream(f"layer norm {node.name!r} has no private parameters of width {hidden}")
            plan.columns.add(name)
        return [node.output[0]]
    if node.op_type == "Add" and len(node.input) == 2:
        other = node.input[1 - index]
        if other not in stream:
            if graph.vector(other, hidden):
                plan.columns.add(other)
            else:
                _make_writer(graph, plan, other)
                stream.add(other)
        return [node.output[0]]
    raise _NotAStream(f"{node.op_type} {node.name!r} on the hidden stream")


def _make_writer(graph: GraphIndex, plan: _Plan, tensor: str) -> None:
    """Puts ``tensor`` (the branch added into the stream) in stream order, back through its bias to its GEMM."""
    while True:
        if len(graph.consumers.get(tensor, [])) != 1 or tensor in graph.graph_outputs:
            raise _NotAStream(f"{tensor!r} has other readers")
        node = graph.producers.get(tensor)
        if node is None:
            raise _NotAStream(f"{tensor!r} is a graph input")
        if node.op_type in ("MatMulInteger", "MatMul"):
            weight = node.input[1]
            if len(graph.shapes.get(weight, ())) != 2 or graph.shapes[weight][1] != plan.hidden \
                    or len(graph.consumers[weight]) != 1:
                raise _NotAStream(f"{node.op_type} {node.name!r} does not write {plan.hidden} private columns")
            plan.columns.add(weight)
            return
        if node.op_type == "Cast":
            tensor = node.input[0]
        elif node.op_type in ("Mul", "Add") and len(node.input) == 2:
            first, second = node.input
            if node.op_type == "Mul" and graph.scalar(second):
                tensor = first
            elif node.op_type == "Mul" and graph.scalar(first):
                tensor = second
            elif node.op_type == "Add" and graph.vector(first, plan.hidden):
                plan.columns.add(first)
                tensor = second
            elif node.op_type == "Add" and graph.vector(second, plan.hidden):
                plan.columns.add(second)
                tensor = first
            else:
                raise _NotAStream(f"{node.op_type} {node.name!r} mixes features")
        else:
            raise _NotAStream(f"{node.op_type} {node.name!r} before the stream")


def permute_hidden_stream(model: Any, *, order: np.ndarray | None = None) -> bool:
    """Stores the hidden stream of the ONNX ``model`` (in memory) in an order safe for every GEMM reading it.

    ``order`` forces a given permutation (tests); by default it is :func:`safe_row_order` of all the
    readers' weights side by side. Returns True if the model was changed; False if the stream needs no
    new order or the graph is not one the rules know (then nothing is changed).
    """
    from onnx import helper, numpy_helper

    graph = GraphIndex(model)
    try:
        plan = _plan(graph)
    except _NotAStream:
        return False
    if not plan.rows:
        return False
    arrays = {name: numpy_helper.to_array(graph.initializers[name]) for name in plan.rows | plan.columns}
    if order is None:
        readers = [arrays[name] for name in sorted(plan.rows)]
        if any(array.dtype != np.int8 for array in readers):
            return False
        try:
            order = safe_row_order(np.hstack(readers))
        except ValueError:
            return False
        if order is None:
            return False
    for name in plan.rows:
        graph.initializers[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arrays[name][order]), name))
    for name in plan.columns:
        permuted = np.ascontiguousarray(arrays[name][..., order])
        graph.initializers[name].CopyFrom(numpy_helper.from_array(permuted, name))
    inverse = np.argsort(order).astype(np.int64)
    graph.graph.initializer.append(numpy_helper.from_array(inverse, "hidden_stream_inverse_order"))
    for output in sorted(plan.outputs):  # the model's outputs come back in the original feature order
        producer = graph.producers[output]
        inner = f"{output}_in_stream_order"
        producer.output[list(producer.output).index(output)] = inner
        for consumer, index in graph.consumers.get(output, []):
            consumer.input[index] = inner
        graph.graph.node.append(helper.make_node("Gather", [inner, "hidden_stream_inverse_order"], [output],
                                                 axis=-1, name=f"{output}_original_order"))
    model.CopyFrom(graph.model)
    return True
