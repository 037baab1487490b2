"""The bottleneck adapter shared by the serial and parallel families, and the
feed-forward output wrapper both plug into.

A bottleneck is ``up(act(down(x)))``. With ``experts > 1`` it is AdaMix (seed 001):
E down- and E up-projections, one of each picked at random per forward pass while
training, the mean of the experts' weights used in evaluation, and :meth:`merge`
collapsing the experts into one adapter for export.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from autopeft.encoder import EncoderLayout

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "silu": F.silu}


class Bottleneck(nn.Module):
    """Down-projection, non-linearity, up-projection; up is zero so a new adapter is the identity.

    Weights are stacked over experts: ``down_weight`` is ``experts x size x hidden``,
    ``up_weight`` is ``experts x hidden x size``.
    """

    def __init__(self, hidden: int, size: int, experts: int = 1, activation: str = "relu") -> None:
        super().__init__()
        self.activation = activation
        self.down_weight = nn.Parameter(torch.empty(experts, size, hidden))
        self.down_bias = nn.Parameter(torch.empty(experts, size))
        self.up_weight = nn.Parameter(torch.zeros(experts, hidden, size))
        self.up_bias = nn.Parameter(torch.zeros(experts, hidden))
        bound = 1.0 / math.sqrt(hidden)
        for e in range(experts):  # nn.Linear's default initialisation, per expert
            nn.init.kaiming_uniform_(self.down_weight[e], a=math.sqrt(5))
        nn.init.uniform_(self.down_bias, -bound, bound)

    @property
    def experts(self) -> int:
        return self.down_weight.shape[0]

    def _weights(self) -> tuple[torch.Tensor, ...]:
        if self.experts == 1:
            return self.down_weight[0], self.down_bias[0], self.up_weight[0], self.up_bias[0]
        if self.training:  # stochastic routing: one down and one up expert for this pass
            i, j = torch.randint(self.experts, (2,)).tolist()
            return self.down_weight[i], self.down_bias[i], self.up_weight[j], self.up_bias[j]
        return self.down_weight.mean(0), self.down_bias.mean(0), self.up_weight.mean(0), self.up_bias.mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dw, db, uw, ub = self._weights()
        h = _ACTIVATIONS[self.activation](F.linear(x, dw.to(x.dtype), db.to(x.dtype)))
        return F.linear(h, uw.to(x.dtype), ub.to(x.dtype))

    @torch.no_grad()
    def merge(self) -> None:
        """Average the experts into a single adapter (what evaluation already uses)."""
        if self.experts == 1:
            return
        for name in ("down_weight", "down_bias", "up_weight", "up_bias"):
            old = getattr(self, name)
            setattr(self, name, nn.Parameter(old.mean(0, keepdim=True), requires_grad=old.requires_grad))


class AdaptedOutput(nn.Module):
    """Replaces an encoder layer's ``output`` block (dense, dropout, residual LayerNorm).

    ``serial`` adapts the feed-forward output before the residual (Pfeiffer placement);
    ``parallel`` reads the feed-forward input and adds ``scaling`` times its output.
    """

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.serial: Bottleneck | None = None
        self.parallel: Bottleneck | None = None
        self.parallel_scaling = 1.0

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        h = self.base_layer.dropout(self.base_layer.dense(hidden_states))
        if self.serial is not None:
            h = h + self.serial(h)
        if self.parallel is not None:
            h = h + self.parallel_scaling * self.parallel(input_tensor)
        return self.base_layer.LayerNorm(h + input_tensor)


class AdaptedFeedForward(nn.Module):
    """Replaces a feed-forward block whose output is added to the residual outside it (DistilBERT's
    ``ffn``, ModernBERT's ``mlp``): ``serial`` adapts its output, ``parallel`` reads its input and adds
    ``scaling`` times its output, as :class:`AdaptedOutput` does for BERT's output block."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.serial: Bottleneck | None = None
        self.parallel: Bottleneck | None = None
        self.parallel_scaling = 1.0

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        h = self.base_layer(hidden_states)
        if self.serial is not None:
            h = h + self.serial(h)
        if self.parallel is not None:
            h = h + self.parallel_scaling * self.parallel(hidden_states)
        return h


def adapted_output(layout: EncoderLayout, i: int) -> AdaptedOutput | AdaptedFeedForward:
    """Layer ``i``'s feed-forward block, wrapped once so several families can plug into it."""
    parent, attr = layout.feed_forward(i)
    block = getattr(parent, attr)
    if not isinstance(block, (AdaptedOutput, AdaptedFeedForward)):
        wrapper = AdaptedOutput if layout.architecture.feed_forward_kind == "output" else AdaptedFeedForward
        block = wrapper(block)
        setattr(parent, attr, block)
    return block


def device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def bottleneck_params(hidden: int, size: int) -> int:
    """Parameters of one single-expert bottleneck."""
    return 2 * hidden * size + size + hidden
