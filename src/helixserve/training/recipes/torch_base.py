"""What the PyTorch recipes share: build, fit with the loop, predict in chunks, export.

Contract: a subclass says how to build its network (:meth:`TorchRecipe.build`), which loss it
trains with (``bce``: one logit, binary; ``ce``: K logits; ``multilabel``: L logits, each its
own sigmoid; ``mse``: one value), and what an
example input looks like (:meth:`TorchRecipe.example`); it may transform the training arrays
(:meth:`TorchRecipe.prepare`, e.g. augmentation) or draw fresh ones every epoch
(:meth:`TorchRecipe.sampler`, e.g. random crops). Predictions and the exported graph go through
the same wrapper (sigmoid, softmax, or the rescaling of a standardised target), so they agree.
A block stack (:meth:`TorchRecipe.use_blocks`: plain dicts, see
:mod:`helixserve.training.blocks_torch`) replaces the recipe's own network; it is built for
:meth:`TorchRecipe.block_input` (one input's shape) and wrapped by
:meth:`TorchRecipe.around_blocks`, and its last shape must be the loss's (1 value, or one per
class for ``ce``). The output wrappers, the loss and the training are the recipe's, unchanged.
``checkpoint`` (set through :meth:`TorchRecipe.use_work_dir` from the caller's work dir),
``fingerprint`` and ``resume`` go to the loop: the training state is saved after every epoch and,
with ``resume``, continued from (see :mod:`helixserve.training.loop`).
"""

from __future__ import annotations

import io
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.errors import HelixError
from helixserve.params.recipes import TorchParams
from helixserve.training.blocks_torch import build as build_blocks
from helixserve.training.blocks_torch import check_outputs
from helixserve.training.classweights import class_weight_vector, label_weight_vector
from helixserve.training.export import torch_to_onnx
from helixserve.training.loop import History, Loss, fit
from helixserve.training.nets import Rescaled, WithSigmoid, WithSigmoids, WithSoftmax
from helixserve.training.recipes.base import Recipe

CHUNK = 512


class TorchRecipe(Recipe):
    """A recipe whose model is a PyTorch module; see the module contract."""

    loss: Loss = "bce"
    hp: TorchParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.model: torch.nn.Module | None = None
        self.shift, self.scale = 0.0, 1.0
        self.initial: dict[str, npt.NDArray[Any]] | None = None
        self.checkpoint: Path | None = None  # where fit() keeps the training state
        self.fingerprint: dict[str, Any] = {}  # what the run was started with (in the checkpoint)
        self.resume = False  # True: fit() continues from the checkpoint
        self.blocks: list[dict[str, Any]] | None = None  # a block stack replacing build()

    def use_work_dir(self, work_dir: Path) -> None:
        self.checkpoint = work_dir / "checkpoint.npz"

    def use_blocks(self, blocks: list[dict[str, Any]]) -> None:
        """Train the network of ``blocks`` instead of :meth:`build`'s; checked now (a
        classifier's count of outputs once the classes are known), so a bad stack is refused
        before any data is read."""
        net = build_blocks(blocks, self.block_input())
        if self.loss != "ce":
            check_outputs(net, self.loss, 1, self.name)
        self.blocks = [dict(block) for block in blocks]

    def block_input(self) -> tuple[int, ...]:
        """The shape of one input the network sees (default: the export example's)."""
        return tuple(self.example().shape[1:])

    def around_blocks(self, net: torch.nn.Module) -> torch.nn.Module:
        """What the recipe puts around a block stack's network (default: nothing)."""
        return net

    def network(self, classes: int) -> torch.nn.Module:
        """A fresh, untrained network: the block stack's (:meth:`use_blocks`), else
        :meth:`build`'s."""
        if self.blocks is None:
            return self.build(classes)
        net = build_blocks(self.blocks, self.block_input())
        check_outputs(net, self.loss, classes, self.name)
        return self.around_blocks(net)

    def class_weight(self) -> str | None:
        """The ``class_weight`` hyper-parameter of a classifier (default: none)."""
        return None

    @abstractmethod
    def build(self, classes: int) -> torch.nn.Module:
        """A fresh, untrained network."""

    @abstractmethod
    def example(self) -> torch.Tensor:
        """An example input batch (size 2) for the ONNX export."""

    def prepare(
        self, x: npt.NDArray[Any], y: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Training arrays as the loop should see them (default: unchanged)."""
        return x, y

    def sampler(
        self, x: npt.NDArray[Any], y: npt.NDArray[Any], seed: int
    ) -> Callable[[int], tuple[npt.NDArray[Any], npt.NDArray[Any]]] | None:
        """Per-epoch training arrays drawn from ``(x, y)`` (default: none, train on them)."""
        return None

    def fit(
        self,
        x_train: npt.NDArray[Any],
        y_train: npt.NDArray[Any],
        x_val: npt.NDArray[Any],
        y_val: npt.NDArray[Any],
        *,
        labels: list[str] | None,
        seed: int,
        progress: bool = False,
        on_epoch: Callable[[History], None] | None = None,
    ) -> History:
        hp = self.hp
        classes = len(labels or [])
        if self.loss == "mse":
            self.shift, self.scale = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
            y_train, y_val = ((y - self.shift) / self.scale for y in (y_train, y_val))
            y_train, y_val = y_train.astype(np.float32), y_val.astype(np.float32)
        torch.manual_seed(seed)
        self.model = self.network(classes)
        if self.initial is not None:
            self._load_initial(self.model, self.initial)
        resample = self.sampler(x_train, y_train, seed)
        x_train, y_train = resample(0) if resample is not None else self.prepare(x_train, y_train)
        weights = self._class_weights(labels, y_train)
        return fit(
            self.model,
            x_train,
            y_train,
            x_val,
            y_val,
            loss=self.loss,
            epochs=hp.epochs,
            batch_size=hp.batch_size,
            lr=hp.lr,
            patience=hp.patience,
            class_weights=weights,
            seed=seed,
            device=hp.device,
            progress=progress,
            on_epoch=on_epoch,
            checkpoint=self.checkpoint,
            resample=resample,
            fingerprint=self.fingerprint,
            resume=self.resume,
        )

    def _class_weights(
        self, labels: list[str] | None, y: npt.NDArray[Any]
    ) -> npt.NDArray[np.float32] | None:
        if self.loss == "mse":
            return None
        if self.loss == "multilabel":
            return label_weight_vector(self.class_weight(), labels or [], y)
        names = labels if labels and len(labels) >= 2 else ["0", "1"]
        return class_weight_vector(self.class_weight(), names, y)

    def weights(self) -> bytes | None:
        if self.model is None:
            return None
        arrays = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays, __shift__=np.array(self.shift), __scale__=np.array(self.scale))
        return buffer.getvalue()

    def start_from(self, weights: bytes) -> None:
        with np.load(io.BytesIO(weights), allow_pickle=False) as archive:
            self.initial = {k: archive[k] for k in archive.files}

    def _load_initial(self, model: torch.nn.Module, arrays: dict[str, npt.NDArray[Any]]) -> None:
        state = {k: torch.as_tensor(v) for k, v in arrays.items() if not k.startswith("__")}
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise HelixError(
                "the earlier model's weights do not fit this architecture (train with the same "
                f"recipe options): {str(err).splitlines()[0]}"
            ) from None

    def wrapped(self) -> torch.nn.Module:
        """The trained network with its output head (what is exported)."""
        if self.model is None:
            raise RuntimeError("call fit() before predicting or exporting")
        model = self.model.cpu().eval()
        if self.loss == "bce":
            return WithSigmoid(model).eval()
        if self.loss == "ce":
            return WithSoftmax(model).eval()
        if self.loss == "multilabel":
            return WithSigmoids(model).eval()
        return Rescaled(model, self.scale, self.shift).eval()

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        model = self.wrapped()
        with torch.no_grad():
            parts = [model(torch.as_tensor(x[i : i + CHUNK])) for i in range(0, len(x), CHUNK)]
        out = torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0)
        if self.loss == "bce":
            return np.stack([1.0 - out, out], axis=1)
        return out

    def export_onnx(self) -> bytes:
        return torch_to_onnx(self.wrapped(), self.example())

    def library_versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def describe(self) -> str:
        if self.blocks is None:
            return super().describe()
        shown = ", ".join(
            block["type"]
            + "("
            + ", ".join(f"{k}={v}" for k, v in block.items() if k != "type")
            + ")"
            for block in self.blocks
        )
        return f"{super().describe()}; network: the block stack {shown}"
