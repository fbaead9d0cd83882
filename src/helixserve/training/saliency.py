"""What a model looks at: gradient saliency maps for images (as a plot for the bundle), and
gradient x input for one-hot DNA.

Contract: :func:`gradient_saliency` returns, for each image ``(C, H, W)``, the absolute gradient
of the true class's log-probability with respect to the pixels (summed over channels, ``(H, W)``),
from the trained model in evaluation mode, i.e. through whatever the model does to a whole image
(normalisation, test-time tiling). :func:`bright_share` summarises a map as the share of its
saliency that falls on the image's bright pixels (above mean + 1 sd: in a nuclear stain, nuclei)
next to the share of the image those pixels cover; :func:`rim_share` does the same for the
outlines of those objects (within 3 pixels of their edge). :func:`saliency_plot` writes
``plots/saliency.png`` (each image beside its map) and ``plots/saliency.json`` (the maps pooled
to 64 x 64, the labels and the shares). :func:`gradient_x_input` is the training-side saliency for
DNA models (the server, which has no torch, uses ISM): for one-hot inputs it returns each
position's gradient of the model's score times the base present, i.e. the first-order estimate
of what that base contributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from matplotlib import pyplot as plt

from helixserve.training.plots import Files, _save

MAP_SIDE = 64


def gradient_saliency(
    model: torch.nn.Module, x: npt.NDArray[Any], y: npt.NDArray[Any]
) -> npt.NDArray[np.float32]:
    """``|d log p(true class) / d pixel|`` per image, summed over channels."""
    model.eval()
    maps = []
    for image, target in zip(x, y, strict=True):
        pixels = torch.as_tensor(image[None]).clone().requires_grad_(True)
        score = torch.log_softmax(model(pixels), dim=1)[0, int(target)]
        (grad,) = torch.autograd.grad(score, pixels)
        maps.append(grad.abs().sum(1)[0].numpy())
    return np.stack(maps).astype(np.float32)


def gradient_x_input(
    model: torch.nn.Module, x: npt.NDArray[Any], output: int = 0
) -> npt.NDArray[np.float32]:
    """``sum_b x[i, b] * d score / d x[i, b]`` per position, for one-hot ``x`` of shape
    ``(N, L, 4)`` in the model's layout; the score is the model's raw output ``output`` (the
    logit of a binary model, the value of a regression model)."""
    model.eval()
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32)).clone().requires_grad_(True)
    scores = model(inputs).reshape(len(inputs), -1)[:, output]
    (grad,) = torch.autograd.grad(scores.sum(), inputs)
    return np.asarray((grad * inputs).sum(-1).detach().numpy(), dtype=np.float32)


def bright_share(image: npt.NDArray[Any], saliency: npt.NDArray[Any]) -> tuple[float, float]:
    """(share of saliency on bright pixels, share of pixels that are bright)."""
    grey = image.mean(axis=0)
    bright = grey > grey.mean() + grey.std()
    total = float(saliency.sum()) or 1.0
    return float(saliency[bright].sum()) / total, float(bright.mean())


def rim_share(
    image: npt.NDArray[Any], saliency: npt.NDArray[Any], width: int = 3
) -> tuple[float, float]:
    """(share of saliency on the outlines of bright objects, share of pixels on them): pixels
    within ``width`` pixels of the edge of the bright mask (above mean + 1 sd), either side."""
    grey = image.mean(axis=0)
    bright = grey > grey.mean() + grey.std()
    grown, shrunk = bright.copy(), bright.copy()
    for _ in range(width):
        grown, shrunk = _neighbours(grown, np.logical_or), _neighbours(shrunk, np.logical_and)
    rim = grown & ~shrunk
    total = float(saliency.sum()) or 1.0
    return float(saliency[rim].sum()) / total, float(rim.mean())


def _neighbours(mask: npt.NDArray[np.bool_], combine: Any) -> npt.NDArray[np.bool_]:
    """One step of dilation (``np.logical_or``) or erosion (``np.logical_and``), 4-neighbour."""
    padded = np.pad(mask, 1, mode="edge")
    out = mask
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        out = combine(out, shifted)
    result: npt.NDArray[np.bool_] = out
    return result


def pooled(saliency: npt.NDArray[Any], side: int = MAP_SIDE) -> npt.NDArray[np.float64]:
    """Mean-pool a map to ``side x side`` (cropping any remainder), scaled to max 1."""
    h, w = (saliency.shape[0] // side) or 1, (saliency.shape[1] // side) or 1
    rows, cols = saliency.shape[0] // h, saliency.shape[1] // w
    small = saliency[: rows * h, : cols * w].reshape(rows, h, cols, w).mean(axis=(1, 3))
    scaled: npt.NDArray[np.float64] = small / (float(small.max()) or 1.0)
    return scaled


def saliency_plot(x: npt.NDArray[Any], maps: npt.NDArray[Any], titles: list[str]) -> Files:
    """Images (top) and their saliency maps (bottom), plus the JSON behind them."""
    figure, axes = plt.subplots(2, len(x), figsize=(2.4 * len(x), 5), squeeze=False)
    shares = [bright_share(image, m) for image, m in zip(x, maps, strict=True)]
    for i, (image, m) in enumerate(zip(x, maps, strict=True)):
        grey = image.mean(axis=0)
        low, high = np.percentile(grey, [1, 99.5])
        axes[0, i].imshow(np.clip((grey - low) / (high - low or 1.0), 0, 1), cmap="gray")
        axes[0, i].set_title("/".join(titles[i].split("/")[-3:]), fontsize=7)
        axes[1, i].imshow(pooled(m), cmap="inferno")
        axes[1, i].set_title(f"{shares[i][0]:.0%} on {shares[i][1]:.0%} brightest", fontsize=8)
        for axis in axes[:, i]:
            axis.axis("off")
    figure.suptitle("Gradient saliency: where the true class's probability is most sensitive")
    data = {
        "titles": titles,
        "maps": [pooled(m).round(4).tolist() for m in maps],
        "saliency_share_on_bright": [s[0] for s in shares],
        "bright_pixel_share": [s[1] for s in shares],
    }
    return _save("saliency", figure, data)
