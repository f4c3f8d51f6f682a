"""Recurrences torch.export keeps rolled: ``nn.GRU`` / ``nn.LSTM`` rewritten with ``torch.scan``.

``torch.export`` keeps ``nn.GRU``/``nn.LSTM`` as one ``aten.gru``/``aten.lstm`` node, but lowering to
an edge dialect (ExecuTorch's ``to_edge``) decomposes it into one copy of the cell per time step: a
dipn at ``max_len`` 50/20/20 becomes ~26,000 nodes, and every exir pass walks all of them. Written
with ``torch._higher_order_ops.scan`` the cell is one sub-graph the runtime loops over, so the lowered
program holds each cell once (a few hundred nodes).

:func:`scanned` returns a copy of a model whose single-layer, unidirectional, batch-first GRUs and
LSTMs are :class:`ScanRNN` modules sharing the original weights; the outputs are the same (the same
PyTorch equations, the input projection computed for every step at once, then the recurrence).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ScanRNN(nn.Module):
    """``nn.GRU`` / ``nn.LSTM`` (one layer, unidirectional, ``batch_first``) as a ``torch.scan`` over time."""

    def __init__(self, rnn: nn.GRU | nn.LSTM) -> None:
        super().__init__()
        if rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first or not rnn.bias:
            raise ValueError("ScanRNN takes a single-layer, unidirectional, batch_first RNN with biases")
        self.lstm = isinstance(rnn, nn.LSTM)
        self.hidden = rnn.hidden_size
        self.w_ih, self.w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
        self.b_ih, self.b_hh = rnn.bias_ih_l0, rnn.bias_hh_l0

    def forward(self, x: torch.Tensor, hx=None):
        from torch._higher_order_ops.scan import scan

        if hx is not None:
            raise ValueError("ScanRNN starts from a zero state")
        gi = F.linear(x, self.w_ih, self.b_ih).transpose(0, 1)  # (T, B, gates*H): every step's input part at once
        h0 = x.new_zeros(x.shape[0], self.hidden)
        w_hh, b_hh = self.w_hh, self.b_hh
        if self.lstm:

            def lstm_step(carry, g):
                h, c = carry
                i, f, gg, o = (g + F.linear(h, w_hh, b_hh)).chunk(4, -1)
                c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h2 = torch.sigmoid(o) * torch.tanh(c2)
                return (h2, c2), h2.clone()  # scan's outputs may not alias its carry

            (h, c), ys = scan(lstm_step, (h0, torch.zeros_like(h0)), gi)
            return ys.transpose(0, 1), (h.unsqueeze(0), c.unsqueeze(0))

        def gru_step(h, g):
            ir, iz, inn = g.chunk(3, -1)
            hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, -1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            h2 = (1 - z) * torch.tanh(inn + r * hn) + z * h
            return h2, h2.clone()

        h, ys = scan(gru_step, h0, gi)
        return ys.transpose(0, 1), h.unsqueeze(0)


def scanned(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every ``nn.GRU``/``nn.LSTM`` replaced by a :class:`ScanRNN`."""
    out = copy.deepcopy(model).eval()
    for mod in list(out.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, (nn.GRU, nn.LSTM)):
                setattr(mod, name, ScanRNN(child))
    return out
