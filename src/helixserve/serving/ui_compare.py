"""What the UI's compare page (``/compare?m=REF&m=REF...``, route in
:mod:`helixserve.serving.routes.ui_pages`) shows: it puts the chosen model versions side by side.

Contract:
- Each ``m`` is ``name``, ``name@version`` or ``name@alias`` (as everywhere else: a bare name is
  the default version, the ``production`` alias if set, else the latest). The page compares
  exactly those, in the order asked, each version once (``yeast-utr@1`` and ``yeast-utr@production``
  pointing at version 1 are one column); at most :data:`MAX_COMPARED`.
- A reference that is not a valid name, or names nothing served, is listed in an alert with the
  registry's message (``m=...: ...``); the others are still compared. Nothing compared at all is a
  404 page, never a 500.
- Without any ``m`` the page compares the default version of every served model and says so.
- Rows: task, input, headline (:func:`~helixserve.store.manifest.headline_of`), every numeric
  test metric; below, the loss curves of the compared versions that have them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from helixserve.errors import HelixError, ModelNotFound
from helixserve.serving import charts
from helixserve.serving.registry import LoadedModel, Registry
from helixserve.store.names import parse_ref

MAX_COMPARED = 12


@dataclass
class Selection:
    """What a compare request resolved to."""

    chosen: list[LoadedModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    default: bool = False


def select(
    registry: Registry, refs: list[str], visible: Callable[[str], bool] = lambda _: True
) -> Selection:
    """The served versions ``refs`` name (see the module contract); a model ``visible`` hides
    from the caller is not served as far as they can tell."""
    if not refs:
        names = [n for n in registry.names() if visible(n)]
        return Selection([registry.resolve(n) for n in names], default=True)
    picked = Selection()
    if len(refs) > MAX_COMPARED:
        picked.problems.append(
            f"{len(refs)} models were asked for; the page compares at most "
            f"{MAX_COMPARED}: the first {MAX_COMPARED} are shown."
        )
    seen: set[tuple[str, int]] = set()
    for text in refs[:MAX_COMPARED]:
        try:
            ref = parse_ref(text)
            if not visible(ref.name):
                raise ModelNotFound(f"no model named {ref.name!r} is served.")
            version = ref.version if ref.version is not None else ref.alias
            model = registry.resolve(ref.name, version)
        except HelixError as err:
            picked.problems.append(f"m={_shown(text)}: {err}")
            continue
        if (model.name, model.version) not in seen:
            seen.add((model.name, model.version))
            picked.chosen.append(model)
    return picked


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "..."


def version_refs(registry: Registry, visible: Callable[[str], bool] = lambda _: True) -> list[str]:
    """Every served ``name@version`` the caller may see, for the page's picker."""
    names = [n for n in registry.names() if visible(n)]
    return [f"{n}@{v}" for n in names for v in sorted(registry.entry(n).versions)]


def curves(chosen: list[LoadedModel]) -> str | None:
    runs = []
    for model in chosen:
        path = model.predictor.bundle_path / "plots" / "loss.json"
        if path.is_file():
            try:
                runs.append((f"{model.name}@{model.version}", json.loads(path.read_text())))
            except ValueError:
                continue
    try:
        return charts.loss(runs) if runs else None
    except (ValueError, KeyError, TypeError):
        return None
