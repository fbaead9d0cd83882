"""A model version's lineage chain, for the model page: the version, its parent, the parent's
parent, ... as each manifest's ``lineage`` records them
(:class:`~helixserve.store.manifest.Lineage`).

Contract:
- :func:`lineage_chain` starts at a manifest and follows ``lineage.parent`` (``name@version``)
  through ``lookup`` (a served version first, else the store's manifest). It stops at a version
  with no parent, at a parent that cannot be read (missing, unreadable: ``lookup`` raises a
  :class:`~helixserve.errors.HelixError` or returns ``None``), at a loop, or after
  :data:`MAX_STEPS` links; :attr:`Chain.stop` then says why in words (``None`` when the chain
  simply ends at its root).
- Each :class:`Link` is one version with how it was made (``trained``, ``init-from``,
  ``quantize``, ...), its parent reference, its source and its details (e.g. the test-metric
  delta of a quantized version), as the manifest recorded them. A manifest without ``lineage``
  (format 1) is one link with ``how`` ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from helixserve.errors import HelixError, ModelNotFound
from helixserve.store.manifest import Manifest

MAX_STEPS = 20


@dataclass(frozen=True)
class Link:
    """One version of a chain."""

    name: str
    version: int
    how: str | None
    parent: str | None
    source: str | None
    details: dict[str, float | str]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def detail_text(self) -> str:
        """``delta_r2 -0.0021, max_abs_diff 0.013`` (numbers to 4 significant digits)."""
        shown = [
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.details.items()
        ]
        return ", ".join(shown)


@dataclass
class Chain:
    """The links from the asked version back to the oldest one found, and why it stopped."""

    links: list[Link] = field(default_factory=list)
    stop: str | None = None


def _link(manifest: Manifest) -> Link:
    lineage = manifest.lineage
    if lineage is None:
        return Link(manifest.name, manifest.version, None, None, None, {})
    return Link(
        manifest.name,
        manifest.version,
        lineage.how,
        lineage.parent,
        lineage.source,
        dict(lineage.details),
    )


def lineage_chain(start: Manifest, lookup: Callable[[str], Manifest | None]) -> Chain:
    """The chain of ``start`` (see the module contract)."""
    chain = Chain([_link(start)])
    seen = {chain.links[0].ref}
    while chain.links[-1].parent is not None:
        parent = chain.links[-1].parent
        if parent in seen:
            chain.stop = f"{parent} is already in the chain (the lineage loops)."
            return chain
        if len(chain.links) > MAX_STEPS:
            chain.stop = f"the chain is longer than {MAX_STEPS} steps; older versions not shown."
            return chain
        try:
            found = lookup(parent)
        except ModelNotFound:
            found = None
        except HelixError as err:
            chain.stop = f"{parent} cannot be read: {err}"
            return chain
        if found is None:
            chain.stop = f"{parent} is not in the store (deleted, or made elsewhere)."
            return chain
        seen.add(parent)
        chain.links.append(_link(found))
    return chain
