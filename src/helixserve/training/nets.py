"""PyTorch architectures of the recipes (inputs: one-hot ``(N, 4, L)``, tokens ``(N, L)``,
features ``(N, F)`` or images ``(N, C, H, W)``; outputs: one logit per item for binary, ``K``
logits for multiclass, one value for regression — the exported ONNX graphs add the sigmoid or
softmax so that served models output probabilities)."""

from __future__ import annotations

from collections.abc import Callable

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


class MotifCNN(nn.Module):
    """The ``dna-classify`` network: conv (``filters`` x ``kernel``, ``padding`` each side) ->
    ReLU -> max-pool -> flatten -> dropout -> dense ``hidden`` -> ReLU -> dense ``outputs``.

    ``window > 0``: max-pools windows of ``window`` positions (the positional network: the dense
    head sees in which window each filter fired, so where a motif sits can matter);
    ``window == 0``: one max-pool over all positions (the global network: a motif anywhere
    counts the same, DeepBind-style). ``width`` is the one-hot input's width.
    """

    def __init__(
        self,
        width: int,
        outputs: int,
        *,
        filters: int,
        kernel: int,
        padding: int,
        window: int,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, filters, kernel, padding=padding)
        convolved = width + 2 * padding - kernel + 1
        self.pool: nn.Module = nn.AdaptiveMaxPool1d(1) if window == 0 else nn.MaxPool1d(window)
        bins = 1 if window == 0 else convolved // window
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(filters * bins, hidden),
            nn.ReLU(),
            nn.Linear(hidden, outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.pool(torch.relu(self.conv(x))))
        return out


class WithSigmoids(nn.Module):
    """Wrap an L-logit model so the exported graph outputs L independent probabilities
    ``(N, L)`` (multi-label)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


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


class UtrCNN(nn.Module):
    """The Cuperus et al. 2017 regressor: three conv layers (128 filters, width 13, ReLU,
    dropout 0.15) on one-hot ``(N, 4, length)``, dense 64, linear output."""

    def __init__(
        self,
        length: int = 70,
        filters: int = 128,
        kernel: int = 13,
        dropout: float = 0.15,
        dense: int = 64,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 4
        for _ in range(3):
            layers += [nn.Conv1d(channels, filters, kernel), nn.ReLU(), nn.Dropout(dropout)]
            channels = filters
        self.convs = nn.Sequential(*layers)
        width = length - 3 * (kernel - 1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(filters * width, dense),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.convs(x))
        return out


class Rescaled(nn.Module):
    """Undo target standardisation in the exported graph: ``value = model(x) * scale + shift``,
    as ``(N,)``."""

    def __init__(self, model: nn.Module, scale: float, shift: float) -> None:
        super().__init__()
        self.model = model
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x).squeeze(1) * self.scale + self.shift
        return out


class GeneBiLSTM(nn.Module):
    """Embedding of tokens (0 = padding) -> [k-mer conv stem] -> two BiLSTM layers -> dropout ->
    one logit.

    The seed's gene-resistance model (``stride=1``). With ``stride=k > 1`` a convolution of width
    and stride ``k`` (32 filters, ReLU) first turns each run of ``k`` bases into one learned
    k-mer vector, so the BiLSTM runs over ``L / k`` steps (k times faster on long genes). Padding
    positions are excluded by max-pooling only over real positions (masked to -1e4 first)."""

    def __init__(
        self, embed: int = 8, units: int = 32, dropout: float = 0.18, stride: int = 1
    ) -> None:
        super().__init__()
        self.stride = stride
        self.embed = nn.Embedding(6, embed, padding_idx=0)
        width = embed
        self.stem: nn.Module | None = None
        if stride > 1:
            width = 32
            self.stem = nn.Sequential(nn.Conv1d(embed, width, stride, stride=stride), nn.ReLU())
        self.lstm = nn.LSTM(width, units, num_layers=2, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(x)
        mask = (x == 0).unsqueeze(2)
        if self.stem is not None:
            embedded = self.stem(embedded.transpose(1, 2)).transpose(1, 2)
            mask = (x.reshape(x.shape[0], -1, self.stride) == 0).all(dim=2).unsqueeze(2)
        states, _ = self.lstm(embedded)
        pooled = states.masked_fill(mask, -1e4).max(dim=1).values
        out: torch.Tensor = self.out(self.drop(pooled))
        return out


class GeneCNN(nn.Module):
    """Embedding of tokens (0 = padding) -> conv (``filters`` k-mer detectors of width
    ``kernel``) -> ReLU -> max over the real positions -> dropout -> one logit.

    A fast alternative to :class:`GeneBiLSTM` for long genes: it asks "does this gene hold one of
    the learned k-mers anywhere", which is what tells one gene (or allele) from another. Windows
    that start in the padding are masked before the pool, so the padded length does not matter."""

    def __init__(
        self, embed: int = 8, filters: int = 64, kernel: int = 12, dropout: float = 0.18
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.embed = nn.Embedding(6, embed, padding_idx=0)
        self.conv = nn.Conv1d(embed, filters, kernel)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hits = torch.relu(self.conv(self.embed(x).transpose(1, 2)))
        padding = (x[:, self.kernel - 1 :] == 0).unsqueeze(1)
        pooled = hits.masked_fill(padding, 0.0).max(dim=2).values
        out: torch.Tensor = self.out(self.drop(pooled))
        return out


class SmallImageCNN(nn.Module):
    """Per-image standardisation -> conv 32 3x3 + pool -> conv 64 3x3 + pool -> dense 128 ->
    K logits. Standardising each image inside the graph makes the model ignore an experiment's
    overall brightness, and serving applies it too."""

    def __init__(self, channels: int, size: int, classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(64 * (size // 4) ** 2, 128),
            nn.ReLU(),
            nn.Linear(128, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(0.01)  # flat images stay finite
        out: torch.Tensor = self.head(self.features((x - mean) / std))
        return out


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Per-image z-score over channels and pixels (flat images stay finite)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(0.01)
    return (x - mean) / std


def tile_starts(size: int, crop: int, tiles: int) -> list[int]:
    """``tiles`` evenly spaced crop offsets covering ``0 .. size - crop`` (both ends)."""
    if tiles <= 1 or size <= crop:
        return [max(0, (size - crop) // 2)]
    return [round(i * (size - crop) / (tiles - 1)) for i in range(tiles)]


class TiledImageCNN(nn.Module):
    """A crop classifier run over a grid of crops, for images at native resolution.

    Each ``crop x crop`` crop is standardised on its own (``normalize``), then conv 32 3x3 + pool
    -> conv 64 3x3 + pool (-> conv 64 3x3 + pool per ``depth`` beyond 2) -> global average pool
    -> dense 128 -> K logits. A crop-sized input gives those logits (training); a larger input
    is cut into a ``tiles x tiles`` grid of crops and the output is the log of the crops' mean
    probabilities, so softmax of it is the averaged probability (test-time tiling inside the
    graph)."""

    def __init__(
        self,
        channels: int,
        classes: int,
        crop: int,
        tiles: int = 4,
        dropout: float = 0.3,
        normalize: bool = True,
        depth: int = 2,
    ) -> None:
        super().__init__()
        self.crop, self.tiles, self.normalize = crop, tiles, normalize
        layers: list[nn.Module] = []
        width = channels
        for out in [32, 64, 64, 64][:depth]:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, classes)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(standardise(x) if self.normalize else x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tiled(self.logits, x, self.crop, self.tiles)


def tiled(
    logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, crop: int, tiles: int
) -> torch.Tensor:
    """``logits`` of a crop-sized batch; for larger images, the log of the mean probabilities of
    a ``tiles x tiles`` grid of crops (softmax of it is the averaged probability)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    if height == crop and width == crop:
        return logits(x)
    rows = tile_starts(height, crop, tiles)
    cols = tile_starts(width, crop, tiles)
    crops = [x[:, :, r : r + crop, c : c + crop] for r in rows for c in cols]
    stacked = torch.stack(crops, dim=1).reshape(-1, channels, crop, crop)
    probs = torch.softmax(logits(stacked), dim=1)
    mean = probs.reshape(-1, len(crops), probs.shape[1]).mean(dim=1)
    return torch.log(mean.clamp_min(1e-12))


class Tiled(nn.Module):
    """Any crop classifier (a block stack's network) run over a grid of crops, as
    :class:`TiledImageCNN` runs its own (see :func:`tiled`)."""

    def __init__(self, model: nn.Module, crop: int, tiles: int) -> None:
        super().__init__()
        self.model, self.crop, self.tiles = model, crop, tiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tiled(self.model, x, self.crop, self.tiles)
