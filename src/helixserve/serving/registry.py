"""The models a server serves: every version of every model in the store, loaded once.

Contract:
- :meth:`Registry.load` reads the store (names, versions, aliases), loads each version not yet
  loaded into a :class:`~helixserve.runtime.predictor.Predictor` with its own
  :class:`~helixserve.runtime.batcher.MicroBatcher`, and swaps in the new :class:`Snapshot` in one
  assignment. Bundles are immutable, so a version already loaded is reused, never reloaded:
  requests in flight finish on the objects they started with and a moved alias takes effect for
  the next request — nothing is dropped. Versions gone from the store are closed after a grace
  period longer than the request timeout.
- If the store cannot be read — or suddenly lists no models at all — the registry keeps the
  snapshot it has and records why in :attr:`Registry.store_error` (``/readyz`` reports it).
  A version that fails to load — or whose self-test examples (``examples.json``, see
  :mod:`helixserve.runtime.selftest`) no longer give the stored outputs — is not served and is
  reported in :attr:`Registry.load_errors`; the others are. An alias pointing at such a version
  keeps pointing where it pointed before (the last good version), else at the newest good one.
- :meth:`Registry.project_of` is the workspace project a served model was deployed from, read from
  its bundles' lineage (see :attr:`ModelEntry.project_id`), or ``None``.
- :meth:`Registry.resolve` maps ``(name, version)`` to a loaded model: ``version`` may be ``None``
  (the ``production`` alias if set, else the latest version), a number, or an alias name; unknown
  ones raise :class:`~helixserve.errors.ModelNotFound` listing what is served.
- :meth:`Registry.explainer` is the served version that computes explanations of a model at a
  precision (``auto``, ``fp32``, ``int8``: its vetted int8 sibling or itself, by the rules of
  :func:`helixserve.explain.precision.choose`) and that choice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from helixserve.errors import HelixError, ModelNotFound, StoreError
from helixserve.explain.precision import Choice, choose
from helixserve.runtime.batcher import BatchPolicy, MicroBatcher, Observer
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.selftest import check_selftest
from helixserve.store.manifest import Manifest
from helixserve.store.names import Ref
from helixserve.store.store import DEFAULT_ALIAS, ModelStore

log = logging.getLogger("helixserve.registry")
ObserverFactory = Callable[[str, int], Observer | None]


@dataclass
class LoadedModel:
    """One served version: its manifest, predictor and batcher."""

    manifest: Manifest
    predictor: Predictor
    batcher: MicroBatcher

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version


@dataclass
class ModelEntry:
    """All served versions of one name, its aliases and its default version."""

    name: str
    versions: dict[int, LoadedModel]
    aliases: dict[str, int]
    preferred: int | None = None  # the store's own default (it knows the pretrained layer)

    @property
    def default(self) -> int:
        for choice in (self.aliases.get(DEFAULT_ALIAS), self.preferred):
            if choice in self.versions and choice is not None:
                return choice
        return max(self.versions)

    @property
    def project_id(self) -> str | None:
        """The workspace project the newest version deployed from a project came from (its
        lineage's ``project_id``), or ``None``: known as soon as the version is served, before
        any database read (:class:`~helixserve.serving.access.Access` uses it)."""
        for version in sorted(self.versions, reverse=True):
            lineage = self.versions[version].manifest.lineage
            found = lineage.details.get("project_id") if lineage is not None else None
            if isinstance(found, str):
                return found
        return None


@dataclass
class Snapshot:
    models: dict[str, ModelEntry] = field(default_factory=dict)
    loaded_at: datetime | None = None


class Registry:
    """Loaded models of one store; see the module contract."""

    def __init__(
        self,
        store: ModelStore,
        *,
        policy: Callable[[str], BatchPolicy] | None = None,
        observer: ObserverFactory | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        self.store = store
        self.snapshot = Snapshot()
        self.store_error: str | None = None
        self.load_errors: dict[str, str] = {}
        self._policy = policy or (lambda _name: BatchPolicy())
        self._observer = observer or (lambda _n, _v: None)
        self._threads = intra_op_threads
        self._lock = asyncio.Lock()

    # --- reading --------------------------------------------------------------------------------

    def resolve(self, name: str, version: str | int | None = None) -> LoadedModel:
        """The loaded model for ``name`` at ``version`` (see the module contract)."""
        entry = self.snapshot.models.get(name)
        if entry is None:
            served = ", ".join(sorted(self.snapshot.models)) or "none"
            raise ModelNotFound(f"no model named {name!r} is served; served models: {served}.")
        if version is None or version == "":
            return entry.versions[entry.default]
        number = _version_number(entry, version)
        if number is None or number not in entry.versions:
            known = ", ".join([str(v) for v in sorted(entry.versions)] + sorted(entry.aliases))
            shown = str(version) if len(str(version)) <= 40 else str(version)[:40] + "..."
            raise ModelNotFound(
                f"model {name!r} has no version or alias {shown!r}; served: {known}."
            )
        return entry.versions[number]

    def explainer(self, model: LoadedModel, precision: str = "auto") -> tuple[LoadedModel, Choice]:
        """The served version that explains ``model`` at ``precision``, and why (see the
        module contract); raises :class:`~helixserve.explain.precision.PrecisionUnavailable`."""
        entry = self.snapshot.models.get(model.name)
        versions = dict(entry.versions) if entry is not None else {}
        versions.setdefault(model.version, model)  # a retired version still explains itself
        choice = choose(model.manifest, [m.manifest for m in versions.values()], precision)
        return versions[choice.version], choice

    def names(self) -> list[str]:
        return sorted(self.snapshot.models)

    def project_of(self, name: str) -> str | None:
        entry = self.snapshot.models.get(name)
        return None if entry is None else entry.project_id

    def entry(self, name: str) -> ModelEntry:
        self.resolve(name)
        return self.snapshot.models[name]

    @property
    def ready(self) -> bool:
        return bool(self.snapshot.models)

    # --- loading --------------------------------------------------------------------------------

    async def load(self) -> Snapshot:
        """Read the store and swap in a new snapshot (off the event loop); see the contract."""
        async with self._lock:
            try:
                snapshot = await asyncio.to_thread(self._build)
            except StoreError as err:
                self.store_error = f"{err} (at {_now()})"
                log.warning("store unreachable, serving what is loaded: %s", err)
                return self.snapshot
            old, self.snapshot, self.store_error = self.snapshot, snapshot, None
        self._retire(old, snapshot)
        return snapshot

    def _build(self) -> Snapshot:
        current = self.snapshot.models
        models: dict[str, ModelEntry] = {}
        errors: dict[str, str] = {}
        names = self.store.list_models()
        if not names and current:
            raise StoreError(
                f"the store {self.store.uri} lists no models now; keeping the "
                f"{len(current)} loaded (a store that empties at once is more likely unmounted or "
                "misconfigured than cleared). Restart the server to serve an empty store."
            )
        for name in names:
            aliases = self.store.aliases(name)
            loaded: dict[int, LoadedModel] = {}
            for version in self.store.versions(name):
                known = current.get(name)
                if known is not None and version in known.versions:
                    loaded[version] = known.versions[version]
                    continue
                try:
                    loaded[version] = self._load_one(name, version)
                except HelixError as err:
                    errors[f"{name}@{version}"] = str(err)
                    log.error("cannot load %s@%d: %s", name, version, err)
                except Exception:  # one bad bundle must never stop the server or its reloads
                    errors[f"{name}@{version}"] = "could not be loaded (see the server log)"
                    log.exception("cannot load %s@%d", name, version)
            if loaded:
                kept = _keep_good(aliases, loaded, current.get(name))
                models[name] = ModelEntry(name, loaded, kept, self._preferred(name))
        self.load_errors = errors
        return Snapshot(models, datetime.now(UTC))

    def _preferred(self, name: str) -> int | None:
        try:
            return self.store.resolve(Ref(name))
        except ModelNotFound:  # e.g. an alias on a deleted version: the entry's rules decide
            return None

    def _load_one(self, name: str, version: int) -> LoadedModel:
        started = time.perf_counter()
        predictor = Predictor(self.store.pull(f"{name}@{version}"), intra_op_threads=self._threads)
        check_selftest(predictor)
        batcher = MicroBatcher(
            predictor, self._policy(name), observer=self._observer(name, version)
        )
        log.info("loaded %s@%d in %.2f s", name, version, time.perf_counter() - started)
        return LoadedModel(predictor.manifest, predictor, batcher)

    def _retire(self, old: Snapshot, new: Snapshot) -> None:
        """Close batchers of versions no longer served, after in-flight requests are done."""
        gone = [
            model
            for name, entry in old.models.items()
            for version, model in entry.versions.items()
            if version not in (new.models.get(name) or ModelEntry(name, {}, {})).versions
        ]
        if gone:
            grace = max(m.batcher.policy.timeout_s for m in gone) + 1
            asyncio.get_running_loop().call_later(grace, _close_all, gone)

    def close(self) -> None:
        """Stop every batcher (server shutdown)."""
        _close_all([m for e in self.snapshot.models.values() for m in e.versions.values()])


def _keep_good(
    aliases: dict[str, int], loaded: dict[int, LoadedModel], before: ModelEntry | None
) -> dict[str, int]:
    """Aliases, with those that point at a version that is not served moved back to where they
    pointed before (if that version is still served), else to the newest served version older
    than it; with neither, the alias is not served."""
    kept = dict(aliases)
    for alias, version in aliases.items():
        if version in loaded:
            continue
        earlier = before.aliases.get(alias) if before is not None else None
        older = [v for v in loaded if v < version]
        fallback = earlier if earlier in loaded else max(older) if older else None
        if fallback is None:
            del kept[alias]
            log.error("alias %s points to version %d, which is not served", alias, version)
            continue
        kept[alias] = fallback
        log.error(
            "alias %s points to version %d, which is not served; serving %d for it",
            alias,
            version,
            fallback,
        )
    return kept


def _close_all(models: list[LoadedModel]) -> None:
    for model in models:
        model.batcher.close()


def _version_number(entry: ModelEntry, version: str | int) -> int | None:
    if isinstance(version, int):
        return version
    if version.isascii() and version.isdigit():  # not '²' or '٣': isdigit() alone takes them
        return int(version) if len(version) <= 18 else None  # 5,000 digits: no such version
    return entry.aliases.get(version)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
