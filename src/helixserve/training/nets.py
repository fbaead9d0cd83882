"""PyTorch architectures of the recipes (inputs: one-hot ``(N, 4, L)``, tokens ``(N, L)``,
features ``(N, F)`` or images ``(N, C, H, W)``; outputs: one logit per item for binary, ``K``
logits for multiclass, one value for regression — the exported ONNX graphs add the sigmoid or
softmax so that served models output probabilities)."""

from __future__ import annotations

import torch
from torch import nn


class DnaCNN(nn.Module):
    """Conv1d -> ReLU -> max-pool -> dense -> ReLU -> dense (the primer tutorial's CNN).

    ``pool=0`` pools over the whole sequence (a motif detector that does not care where the motif
    sits); otherwise windows of ``pool`` positions, as in the tutorial (pool 4).
    """

    def __init__(
        self,
        length: int,
        filters: int = 32,
        kernel: int = 12,
        pool: int = 4,
        hidden: int = 16,
        dropout: float = 0.0,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, filters, kernel)
        self.pool: nn.Module = nn.AdaptiveMaxPool1d(1) if pool == 0 else nn.MaxPool1d(pool)
        width = 1 if pool == 0 else (length - kernel + 1) // pool
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(filters * width, hidden),
            nn.ReLU(),
            nn.Linear(hidden, outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.pool(torch.relu(self.conv(x))))
        return out


class DnaLSTM(nn.Module):
    """(Bi)LSTM over one-hot positions, last hidden states -> dense: the seed's LSTM."""

    def __init__(
        self, units: int = 32, bidirectional: bool = True, dropout: float = 0.2, outputs: int = 1
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, units, batch_first=True, bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(units * (2 if bidirectional else 1), outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(x.transpose(1, 2))
        pooled = states.max(dim=1).values
        out: torch.Tensor = self.out(self.drop(pooled))
        return out


class WithSigmoid(nn.Module):
    """Wrap a one-logit model so the exported graph outputs P(positive) as ``(N,)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x)).squeeze(1)


class WithSoftmax(nn.Module):
    """Wrap a K-logit model so the exported graph outputs probabilities ``(N, K)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)
