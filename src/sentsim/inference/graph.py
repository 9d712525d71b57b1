"""The transformer's forward recorded once as a TorchScript graph, for a server's many small forwards.

Eager, a MiniLM forward is some 200 Python-level calls (modules, masks, autocast), each taking the
GIL. On the server's two runner threads, beside the event loop, those calls were the bottleneck:
the runners were off the CPU for 18 % of the time they had work (waiting for the GIL or a core),
and a one-sentence forward still cost 5.4 ms on one core. A traced graph runs as one call that
hands the GIL back for the whole forward, as an ONNX Runtime session does: one sentence in 3.6 ms,
and two runner threads replaying server-like batches of STSb test reached 1,560–1,620 instead of
975–980 sentences/s (2 Intel AMX cores, a busy event loop simulated beside them).

Tracing records what one example did, so Python decisions on shapes or values become constants;
a model whose code makes one the trace cannot generalise would give wrong vectors. Hence the check:
the graph is used only if it reproduces the eager forward *bit for bit* on probe batches of several
sizes and lengths (padded and unpadded, up to ``max_seq_length``); otherwise the eager forward stays.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from sentsim.inference.forward import autocast_context

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

logger = logging.getLogger(__name__)

#: Texts whose token ids make the probe batches: one word, a sentence, a long text (cut at the limit).
PROBE_TEXTS = (
    "yes",
    "A man is playing a flute.",
    "Two dogs run across the green field while a child throws a red ball for them.",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 64),
)


class _HiddenStates(nn.Module):
    """The encoder with positional tensor inputs and one tensor out, as tracing needs."""

    def __init__(self, encoder: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.names = tuple(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.encoder(**dict(zip(self.names, tensors, strict=True)), return_dict=False)[0]


def trace_transformer(model: SentenceTransformer, *, precision: str) -> bool:
    """Makes ``model``'s transformer run its inference forwards as a traced graph, if it passes the check.

    ``precision`` ("bf16" or "fp32"): the autocast the graph records; the transformer uses the graph
    only for no-grad eval forwards under that same precision (anything else runs eager). Returns
    whether the graph is in use. For a model the caller owns (a server's): the graph shares its
    weights, so changing them in place later would change the graph's results too.
    """
    transformer = model.transformer
    device = model.device
    probes = _probe_batches(model)
    names = tuple(probes[0])
    wrapper = _HiddenStates(transformer.auto_model, names).eval()

    def eager(features: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode(), autocast_context(precision, device):
            return wrapper(*(features[name].to(device) for name in names))

    try:
        example = probes[0]  # padded, so the trace records the attention mask being applied
        with torch.no_grad(), autocast_context(precision, device), warnings.catch_warnings():
            # the tracer warns at every shape turned into a Python value; the check below is the judge
            warnings.simplefilter("ignore")
            graph = torch.jit.trace(wrapper, tuple(example[name].to(device) for name in names), check_trace=False)
        expected = [eager(features) for features in probes]
        # twice: TorchScript profiles a graph's first run and optimises the later ones
        for features, wanted in [*zip(probes, expected, strict=True)] * 2:
            with torch.inference_mode():
                traced = graph(*(features[name].to(device) for name in names))
            if not torch.equal(traced, wanted):
                logger.warning("running the eager forward: the traced graph gives other vectors for a batch of "
                               "shape %s", tuple(features["input_ids"].shape))
                return False
    except Exception:  # a model tracing cannot record: it keeps its eager forward
        logger.warning("running the eager forward: tracing the transformer failed", exc_info=True)
        return False
    transformer.use_inference_graph(graph, inputs=names, precision=precision)
    return True


def _probe_batches(model: SentenceTransformer) -> list[dict[str, torch.Tensor]]:
    """Padded and unpadded batches of 1 to 7 rows, short to ``max_seq_length`` tokens."""
    one, short, medium, longest = model.token_ids(list(PROBE_TEXTS))
    batches = [[medium, short, one], [short], [medium, one, longest, short, one, medium, short], [longest],
               [one, one], [medium[:-2] + medium[-1:], medium]]
    return [model.collate(batch) for batch in batches]
