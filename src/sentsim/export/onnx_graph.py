"""An index over a loaded ONNX graph, for the passes that re-order an int8 export's weights.

``stream_order``, ``head_order`` and ``pairing`` each follow tensors from their producers to their
consumers and rewrite initializers; this is the one map of the graph they share. Building it gives
every node (of a working copy) its own copy of an initializer several nodes read, so a pass can
re-order one without changing another.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class GraphIndex:
    """A working copy of a loaded ONNX model, with its initializers (each private to one reader),
    producers and consumers. A pass edits ``model`` and copies it back over the original only when it
    changed something, so a pass that gives up leaves the original exactly as it was."""

    def __init__(self, model: Any) -> None:
        self.model = type(model)()
        self.model.CopyFrom(model)
        self.graph = self.model.graph
        _unshare_initializers(self.graph)
        self.initializers = {tensor.name: tensor for tensor in self.graph.initializer}
        self.shapes = {name: tuple(tensor.dims) for name, tensor in self.initializers.items()}
        self.producers = {output: node for node in self.graph.node for output in node.output}
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        for node in self.graph.node:
            for index, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, index))
        self.graph_outputs = {output.name for output in self.graph.output}

    def scalar(self, name: str) -> bool:
        """A one-element tensor: a size-1 initializer, a quantiser's scale or zero point, or a product of those."""
        if name in self.shapes:
            return int(np.prod(self.shapes[name])) == 1
        node = self.producers.get(name)
        if node is None:
            return False
        if node.op_type == "DynamicQuantizeLinear":
            return list(node.output).index(name) > 0
        return node.op_type == "Mul" and all(self.scalar(item) for item in node.input)

    def vector(self, name: str, hidden: int) -> bool:
        return self.shapes.get(name) == (hidden,) and len(self.consumers.get(name, [])) == 1


def _unshare_initializers(graph: Any) -> None:
    """Gives each node its own copy of an initializer several nodes read. ORT merges equal constants (a
    fresh model's layer norms are all ones and zeros), and one copy cannot follow two orders."""
    tensors = {tensor.name: tensor for tensor in graph.initializer}
    seen: set[str] = set()
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name not in tensors:
                continue
            if name in seen:
                copy = type(tensors[name])()
                copy.CopyFrom(tensors[name])
                copy.name = f"{name}_for_{node.name or node.op_type}_{index}_{len(graph.initializer)}"
                graph.initializer.append(copy)
                node.input[index] = copy.name
            seen.add(name)
