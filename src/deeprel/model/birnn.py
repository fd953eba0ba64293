"""Stacked bidirectional RNN layers (the shared, NER-specific and RE-specific stacks)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deeprel.config import Cell

_CELLS: dict[str, type[nn.GRU] | type[nn.LSTM]] = {"gru": nn.GRU, "lstm": nn.LSTM}


class BiRNNStack(nn.Module):
    """``depth`` bidirectional RNN layers, each preceded by dropout (Crone 2020, section 3).

    ``hidden_size`` is the size of *each direction*, so every layer outputs ``2 * hidden_size``
    features; we read the paper's "BiRNN sizes 256" this way. Each layer is its own module
    (not one ``nn.GRU(num_layers=depth)``) so dropout also sits before the first layer.
    ``depth == 0`` is the identity: the task-specific stacks may be absent.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        depth: int,
        cell: Cell = "gru",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        rnn_class = _CELLS[cell]
        sizes = [input_size] + [2 * hidden_size] * depth
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            rnn_class(sizes[k], hidden_size, batch_first=True, bidirectional=True) for k in range(depth)
        )
        self._output_size = sizes[-1]

    @property
    def output_size(self) -> int:
        return self._output_size

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x``: [B, T, D]; ``mask``: [B, T] bool, left-aligned, every length >= 1.

        Returns [B, T, output_size]; padded positions are zero (for depth >= 1).
        """
        if not self.layers:
            return x
        total_length = x.size(1)
        # Packing keeps padding out of the backward direction; lengths must live on the CPU.
        lengths = mask.sum(dim=1).cpu()
        for rnn in self.layers:
            packed = pack_padded_sequence(self.dropout(x), lengths, batch_first=True, enforce_sorted=False)
            out, _ = rnn(packed)
            x, _ = pad_packed_sequence(out, batch_first=True, total_length=total_length)
        return x
