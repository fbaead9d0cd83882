"""Training checkpoints: all a training loop needs to continue an interrupted run exactly.

Contract:
- :func:`save` writes one ``.npz`` (plain arrays and one JSON string: no pickle), atomically
  (written beside it, then renamed over it). Arrays: ``model.<name>`` (the weights now),
  ``best.<name>`` (the best epoch's weights), ``optimizer.<index>.<key>`` (the optimiser's
  per-parameter state, e.g. Adam's moments and step), ``rng.torch``, ``rng.shuffle`` (the loop's
  shuffling generator), ``rng.numpy``, ``rng.python`` and, when CUDA is there, ``rng.cuda.<i>``.
  ``meta`` (JSON): ``format``, ``epoch`` (epochs done), ``stopped`` (training had ended),
  ``best_epoch``, ``best_loss``, ``epochs_without_improvement``, ``history`` (train and
  validation loss per epoch), the scalar parts of the NumPy and Python RNG states, and the
  ``fingerprint`` the run was started with (``data_sha256`` and ``options``).
- :func:`read_meta` reads ``meta`` only (fast: to check a checkpoint before any training);
  :func:`check_fingerprint` refuses one started with other data or options, naming what differs;
  :func:`load` puts weights, optimiser state and RNG states back and returns the best weights
  and ``meta``.
- Everything raises :class:`~helixserve.errors.HelixError` saying what is wrong and what to do:
  no checkpoint, not a checkpoint this version can resume, other data or options, weights that
  do not fit the model.
"""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.errors import HelixError

FORMAT = 1
RESTART = "or train from the start without --resume"


def save(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    best: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Write the checkpoint; see the module contract."""
    arrays: dict[str, Any] = _prefixed("model", model.state_dict()) | _prefixed("best", best)
    for index, state in optimizer.state_dict()["state"].items():
        arrays |= _prefixed(f"optimizer.{index}", state)
    rngs, rng_meta = _rng_states(generator)
    arrays |= rngs
    arrays["meta"] = np.array(json.dumps({**meta, "format": FORMAT, "rng": rng_meta}))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    with partial.open("wb") as handle:
        np.savez(handle, *(), **arrays)
    partial.replace(path)


def _prefixed(prefix: str, state: dict[Any, Any]) -> dict[str, npt.NDArray[Any]]:
    return {f"{prefix}.{k}": torch.as_tensor(v).detach().cpu().numpy() for k, v in state.items()}


def _rng_states(generator: torch.Generator) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    _, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    version, words, gauss_next = random.getstate()
    arrays = {
        "rng.torch": torch.get_rng_state().numpy(),
        "rng.shuffle": generator.get_state().numpy(),
        "rng.numpy": np.asarray(keys, dtype=np.uint32),
        "rng.python": np.asarray(words, dtype=np.int64),
    }
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            arrays[f"rng.cuda.{i}"] = state.numpy()
    scalars = {
        "numpy": [int(position), int(has_gauss), float(cached)],
        "python": [version, gauss_next],
    }
    return arrays, scalars


def read_meta(path: Path) -> dict[str, Any]:
    """The checkpoint's ``meta``; see the module contract."""
    if not path.is_file():
        raise HelixError(
            f"--resume: there is no checkpoint at {path}, so there is nothing to resume; give "
            f"--work-dir the folder of the interrupted run, {RESTART}."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta: dict[str, Any] = json.loads(str(archive["meta"]))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        meta = {}
    if meta.get("format") != FORMAT:
        raise HelixError(
            f"--resume: {path} is not a checkpoint this version can resume (written by an older "
            f"helixserve, or damaged); {RESTART}."
        )
    return meta


def check_fingerprint(path: Path, meta: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse to resume a run started with other data or options."""
    then = meta.get("fingerprint", {})
    if then.get("data_sha256") != now.get("data_sha256"):
        raise HelixError(
            f"--resume: the run in {path} was started on other data (sha256 "
            f"{str(then.get('data_sha256'))[:12]}... then, {str(now.get('data_sha256'))[:12]}... "
            f"now); resume with the same data file, {RESTART}."
        )
    old, new = then.get("options", {}), now.get("options", {})
    changed = [
        f"--{k.replace('_', '-')} {old.get(k)!r} then, {new.get(k)!r} now"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]
    if changed:
        raise HelixError(
            f"--resume: the run in {path} was started with other options ({'; '.join(changed)}); "
            f"resume with the same options, {RESTART}."
        )


def load(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore the checkpoint into the loop's objects; return the best weights and ``meta``."""
    meta = read_meta(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "meta"}
    current, best = _section(arrays, "model"), _section(arrays, "best")
    try:
        model.load_state_dict(current)
        model.load_state_dict(best)  # both must fit; the current weights go back below
    except RuntimeError as err:
        raise HelixError(
            f"--resume: the weights in {path} do not fit this model "
            f"({str(err).splitlines()[0]}); {RESTART}."
        ) from None
    model.load_state_dict(current)
    state = optimizer.state_dict()
    state["state"] = {i: _section(arrays, f"optimizer.{i}") for i in _optimizer_indices(arrays)}
    optimizer.load_state_dict(state)
    _restore_rngs(arrays, meta["rng"], generator)
    return best, meta


def _section(arrays: dict[str, npt.NDArray[Any]], prefix: str) -> dict[str, torch.Tensor]:
    start = prefix + "."
    return {k[len(start) :]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith(start)}


def _optimizer_indices(arrays: dict[str, npt.NDArray[Any]]) -> list[int]:
    return sorted({int(k.split(".")[1]) for k in arrays if k.startswith("optimizer.")})


def _restore_rngs(
    arrays: dict[str, npt.NDArray[Any]], scalars: dict[str, Any], generator: torch.Generator
) -> None:
    torch.set_rng_state(torch.as_tensor(arrays["rng.torch"]))
    generator.set_state(torch.as_tensor(arrays["rng.shuffle"]))
    position, has_gauss, cached = scalars["numpy"]
    np.random.set_state(("MT19937", arrays["rng.numpy"], position, has_gauss, cached))
    version, gauss_next = scalars["python"]
    random.setstate((version, tuple(int(w) for w in arrays["rng.python"]), gauss_next))
    cuda = [
        torch.as_tensor(arrays[f"rng.cuda.{i}"])
        for i in range(torch.cuda.device_count())
        if f"rng.cuda.{i}" in arrays
    ]
    if cuda and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
