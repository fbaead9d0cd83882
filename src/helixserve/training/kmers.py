"""Fixed k-mer features as a PyTorch layer, and ridge regression on them in closed form.

Contract:
- :class:`KmerFeatures` maps one-hot DNA ``(N, 4, L)`` (all-zero columns for padding, flanks and
  ``N``) to ``(N, F)``: the count of every k-mer for k = 1..``k_max`` (4 + 16 + ... + 4**k_max
  columns, k-mers in :func:`itertools.product` order over ``ACGT``, like
  :func:`helixserve.training.cv.kmer_counts`), followed, when ``positional``, by the one-hot input
  itself, flattened (which base sits where: with 3'-aligned inputs, at which distance from the
  start codon). The counts come from fixed convolutions: filter j of width k is the one-hot
  indicator of k-mer j, so its output reaches k only where the window matches it exactly; a
  window touching an all-zero column never matches. Nothing in it trains, and its filters are
  rebuilt from ``k_max`` (they are not part of the saved weights).
- :func:`fit_ridge` fits ridge regression with an intercept in closed form (one eigendecomposition
  of the smaller Gram matrix of the centred features), picks ``alpha`` from ``alphas`` by the
  leave-one-out error (closed form, centring on all rows), and returns the weights, the chosen
  alpha and every training row's leave-one-out prediction.
- :class:`RidgeHead` is such a fit as a fixed layer on the one-hot input (it looks each window's
  weight up rather than counting, so serving memory stays small);
  :class:`Blend` mixes it with a network, ``(1 - share) * ridge + share * network``, with the share
  picked by :func:`best_share` on held-out rows, so the result is one module (one ONNX graph)
  taking the same one-hot input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

ALPHAS = tuple(float(a) for a in np.logspace(-1, 4, 12))  # the k-mer ridge baseline's grid
CHUNK = 64  # rows per pass: the 6-mer counts take 4**6 x L floats per row


def kmer_filters(k: int) -> torch.Tensor:
    """``(4**k, 4, k)``: filter j is the one-hot indicator of the j-th k-mer."""
    codes = np.arange(4**k)
    digits = (codes[:, None] // 4 ** np.arange(k - 1, -1, -1)[None, :]) % 4  # first base first
    filters = np.zeros((4**k, 4, k), dtype=np.float32)
    for position in range(k):
        filters[codes, digits[:, position], position] = 1.0
    return torch.from_numpy(filters)


class KmerFeatures(nn.Module):
    """One-hot ``(N, 4, L)`` -> k-mer counts (k = 1..k_max) [+ flattened one-hot]; fixed."""

    def __init__(self, length: int, k_max: int = 6, positional: bool = True) -> None:
        super().__init__()
        self.k_max, self.positional = k_max, positional
        for k in range(1, k_max + 1):
            self.register_buffer(f"filters{k}", kmer_filters(k), persistent=False)
        self.size = sum(4**k for k in range(1, k_max + 1)) + (4 * length if positional else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for k in range(1, self.k_max + 1):
            filters = self.get_buffer(f"filters{k}")
            matches = nn.functional.conv1d(x, filters) > k - 0.5
            parts.append(matches.to(x.dtype).sum(dim=2))
        if self.positional:
            parts.append(x.flatten(1))
        return torch.cat(parts, dim=1)


class RidgeHead(nn.Module):
    """A ridge fit on :class:`KmerFeatures` as a fixed layer: ``(N, 4, L)`` -> ``(N, 1)``.

    It gives ``features(x) @ weights + bias`` without materialising the counts: each window's
    k-mer number comes from a fixed convolution (base codes 0-3 weighted by powers of 4), its
    weight is looked up, and the weights of windows that hold a base in every column are summed.
    Memory stays ``O(N * L)`` per k instead of ``O(N * 4**k * L)``.
    """

    def __init__(
        self, features: KmerFeatures, weights: npt.NDArray[np.float64], bias: float
    ) -> None:
        super().__init__()
        self.k_max, self.positional = features.k_max, features.positional
        start = 0
        for k in range(1, self.k_max + 1):
            place = 4.0 ** np.arange(k - 1, -1, -1)  # the first base is the most significant
            code = np.outer(np.arange(4.0), place)[None].astype(np.float32)  # (1, 4, k)
            self.register_buffer(f"code{k}", torch.from_numpy(code), persistent=False)
            self.register_buffer(f"ones{k}", torch.ones(1, 4, k), persistent=False)
            self.register_buffer(f"weights{k}", _floats(weights[start : start + 4**k]))
            start += 4**k
        self.register_buffer("position_weights", _floats(weights[start:]))
        self.register_buffer("bias", _floats(np.array([bias])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.get_buffer("bias").expand(x.shape[0])
        for k in range(1, self.k_max + 1):
            code = nn.functional.conv1d(x, self.get_buffer(f"code{k}")).squeeze(1)
            full = nn.functional.conv1d(x, self.get_buffer(f"ones{k}")).squeeze(1) > k - 0.5
            index = code.round().long().clamp(0, 4**k - 1)
            looked_up = self.get_buffer(f"weights{k}")[index]
            total = total + (looked_up * full.to(x.dtype)).sum(dim=1)
        if self.positional:
            total = total + x.flatten(1) @ self.get_buffer("position_weights")
        return total.unsqueeze(1)


def _floats(values: npt.NDArray[np.float64]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


@dataclass
class RidgeFit:
    weights: npt.NDArray[np.float64]
    bias: float
    alpha: float
    loo: npt.NDArray[np.float64]  # each training row's leave-one-out prediction


def features_of(features: KmerFeatures, x: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """The feature matrix of encoded inputs, as float64."""
    with torch.no_grad():
        parts = [features(torch.as_tensor(x[i : i + CHUNK])) for i in range(0, len(x), CHUNK)]
    return torch.cat(parts).numpy().astype(np.float64)


def fit_ridge(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], alphas: tuple[float, ...] = ALPHAS
) -> RidgeFit:
    """Closed-form ridge with leave-one-out choice of alpha; see the module contract."""
    x_mean, y_mean = x.mean(axis=0), float(np.mean(y))
    xc, yc = x - x_mean, y - y_mean
    basis, eigen = _left_basis(xc)
    projected = basis.T @ yc
    best: tuple[float, float, npt.NDArray[np.float64]] | None = None
    for alpha in alphas:
        shrink = eigen / (eigen + alpha)
        fitted = basis @ (shrink * projected)
        leverage = (basis**2) @ shrink
        loo = yc - (yc - fitted) / np.clip(1.0 - leverage, 1e-12, None)
        error = float(np.mean((yc - loo) ** 2))
        if best is None or error < best[0]:
            best = (error, alpha, loo)
    if best is None:
        raise ValueError("fit_ridge needs at least one alpha.")
    _, alpha, loo = best
    weights = xc.T @ (basis @ (projected / (eigen + alpha)))
    return RidgeFit(weights, y_mean - float(x_mean @ weights), alpha, loo + y_mean)


def _left_basis(
    xc: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Orthonormal ``U`` (n x r) and eigenvalues ``s`` with ``xc @ xc.T = U diag(s) U.T``,
    from whichever Gram matrix is smaller."""
    rows, cols = xc.shape
    if rows <= cols:
        eigen, basis = np.linalg.eigh(xc @ xc.T)
    else:
        eigen, right = np.linalg.eigh(xc.T @ xc)
        basis = xc @ right
    keep = eigen > 1e-9 * max(float(eigen.max(initial=0.0)), 1e-300)
    eigen, basis = eigen[keep], basis[:, keep]
    if rows > cols:
        basis = basis / np.sqrt(eigen)
    return basis, eigen


class Blend(nn.Module):
    """``(1 - share) * ridge(x) + share * network(x)``: one graph, the same one-hot input."""

    def __init__(self, ridge: RidgeHead, network: nn.Module, share: float) -> None:
        super().__init__()
        self.ridge, self.network = ridge, network
        self.register_buffer("share", torch.tensor(float(share)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        share = self.get_buffer("share")
        out: torch.Tensor = (1.0 - share) * self.ridge(x) + share * self.network(x)
        return out


def best_share(
    ridge: npt.NDArray[np.float64],
    network: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    steps: int = 10,
) -> float:
    """The network's share in ``0, 1/steps, ..., 1`` with the lowest squared error on ``y``
    (ties go to the smaller share: the ridge part is the safer one)."""
    shares = np.linspace(0.0, 1.0, steps + 1)
    errors = [float(np.mean(((1 - s) * ridge + s * network - y) ** 2)) for s in shares]
    return float(shares[int(np.argmin(errors))])
