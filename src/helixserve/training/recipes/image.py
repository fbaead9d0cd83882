"""The ``image`` recipe: a small CNN over single- or three-channel images, with augmentation.

Images are decoded by :mod:`helixserve.inputs.images` to ``(C, size, size)`` in [0, 1] (exactly
as serving does). Two modes:

- ``crop=0`` (default): the whole image, resized to ``size``; the network standardises each
  image itself (so an experiment's brightness is not a shortcut), then conv 32 3x3 + pool,
  conv 64 3x3 + pool, dense 128, softmax over classes. Augmentation: the eight flips/rotations of
  the square (microscopy has no "up"), applied to the training images before each run.
- ``crop=N`` (e.g. 96): images are kept at their native ``size`` (no resizing: the served schema
  refuses other sizes, since morphology depends on the pixel scale). Every epoch draws
  ``crops_per_image`` random ``N x N`` crops of each training image, each with a random
  flip/rotation and (``augment``) a random intensity scale and gamma; each crop is standardised
  on its own (``normalize="per-image"``). ``tiles=0`` (default) picks the smallest grid that
  covers the whole image, ``ceil(size / crop)`` per side. The network
  (:class:`~helixserve.training.nets.TiledImageCNN`) classifies crops; for a whole image it
  averages the probabilities of a ``tiles x tiles`` grid of crops inside the exported graph, so
  a served upload of one image is scored exactly as evaluated.

Hyper-parameters: :class:`~helixserve.params.recipes.ImageParams`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.images import ImageSchema
from helixserve.params.recipes import ImageParams
from helixserve.store.manifest import Task
from helixserve.training.nets import SmallImageCNN, Tiled, TiledImageCNN
from helixserve.training.recipes.torch_base import TorchRecipe
from helixserve.training.saliency import bright_share, gradient_saliency, rim_share, saliency_plot

Arrays = tuple[npt.NDArray[Any], npt.NDArray[Any]]


def dihedral(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> Arrays:
    """The 8 flips/rotations of every image, with their labels repeated."""
    views = []
    for k in range(4):
        rotated = np.rot90(x, k, axes=(2, 3))
        views += [rotated, rotated[:, :, :, ::-1]]
    return np.ascontiguousarray(np.concatenate(views)), np.tile(y, 8)


def random_crops(
    x: npt.NDArray[Any],
    y: npt.NDArray[Any],
    *,
    crop: int,
    per_image: int,
    rng: np.random.Generator,
    jitter: bool,
) -> Arrays:
    """``per_image`` random crops of every image, each randomly flipped/rotated and (``jitter``)
    scaled in intensity (x0.5-2, clipped to 1) and gamma-corrected (0.7-1.4)."""
    n, _, height, width = x.shape
    source = np.repeat(np.arange(n), per_image)
    rows = rng.integers(0, height - crop + 1, len(source))
    cols = rng.integers(0, width - crop + 1, len(source))
    out = np.empty((len(source), x.shape[1], crop, crop), dtype=np.float32)
    for i, (s, r, c) in enumerate(zip(source, rows, cols, strict=True)):
        view = np.rot90(x[s, :, r : r + crop, c : c + crop], int(rng.integers(4)), axes=(1, 2))
        out[i] = view[:, :, ::-1] if rng.random() < 0.5 else view
    if jitter:
        scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0), (len(out), 1, 1, 1)))
        gamma = np.exp(rng.uniform(np.log(0.7), np.log(1.4), (len(out), 1, 1, 1)))
        out = (np.clip(out * scale, 0.0, 1.0) ** gamma).astype(np.float32)
    return out, y[source]


class ImageCNN(TorchRecipe):
    """Image -> one of K classes."""

    name = ImageParams.recipe
    params_class = ImageParams
    task: Task = "multiclass"
    loss = "ce"

    hp: ImageParams

    def tiles(self) -> int:
        """Crops per side of a served image: ``tiles``, or (0) the fewest that cover it."""
        hp = self.hp
        return hp.tiles or (-(-hp.size // hp.crop) if hp.crop else 1)

    def class_weight(self) -> str | None:
        return self.hp.class_weight

    def input_schema(self) -> ImageSchema:
        hp = self.hp
        return ImageSchema(width=hp.size, height=hp.size, channels=hp.channels, resize=not hp.crop)

    def network(self, classes: int) -> torch.nn.Module:
        self.task = "binary" if classes == 2 else "multiclass"
        return super().network(classes)

    def block_input(self) -> tuple[int, ...]:
        """With ``crop`` the network sees crops (a served image: a grid of them)."""
        hp = self.hp
        side = hp.crop or hp.size
        return (hp.channels, side, side)

    def around_blocks(self, net: torch.nn.Module) -> torch.nn.Module:
        return Tiled(net, self.hp.crop, self.tiles()) if self.hp.crop else net

    def build(self, classes: int) -> torch.nn.Module:
        hp = self.hp
        if hp.crop:
            return TiledImageCNN(
                hp.channels,
                classes,
                hp.crop,
                self.tiles(),
                hp.dropout,
                hp.normalize == "per-image",
                hp.depth,
            )
        return SmallImageCNN(hp.channels, hp.size, classes, hp.dropout)

    def prepare(self, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> Arrays:
        return dihedral(x, y) if self.hp.augment else (x, y)

    def sampler(
        self, x: npt.NDArray[Any], y: npt.NDArray[Any], seed: int
    ) -> Callable[[int], Arrays] | None:
        hp = self.hp
        if not hp.crop:
            return None

        def draw(epoch: int) -> Arrays:
            rng = np.random.default_rng([seed, epoch])
            return random_crops(
                x, y, crop=hp.crop, per_image=hp.crops_per_image, rng=rng, jitter=hp.augment
            )

        return draw

    def explain(
        self, x: npt.NDArray[Any], y: npt.NDArray[Any], titles: list[str]
    ) -> tuple[dict[str, bytes], str]:
        """Gradient saliency of the whole served model (normalisation and tiling included)."""
        if self.model is None or not len(x):
            return {}, ""
        maps = gradient_saliency(self.model.cpu(), x, y)
        pairs = list(zip(x, maps, strict=True))
        inner = np.array([bright_share(i, m) for i, m in pairs]).mean(axis=0)
        rims = np.array([rim_share(i, m) for i, m in pairs]).mean(axis=0)
        sentence = (
            f"Gradient saliency over {len(x)} test images, one per class (plots/saliency.png): "
            f"on average {inner[0]:.0%} of the saliency falls on the bright objects (pixels above "
            f"mean + 1 sd; in a nuclear stain, the nuclei), which cover {inner[1]:.0%} of the "
            f"image, and {rims[0]:.0%} on their outlines (within 3 px of their edge), which cover "
            f"{rims[1]:.0%}."
        )
        return saliency_plot(x, maps, titles), sentence

    def example(self) -> torch.Tensor:
        hp = self.hp
        return torch.zeros(2, hp.channels, hp.size, hp.size)
