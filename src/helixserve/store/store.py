"""ModelStore: versioned, integrity-checked bundles on a local disk or S3, with movable aliases.

Layout under the store's root (the same on a disk and in a bucket)::

    <name>/versions/<v>/manifest.json     written last: its presence makes version v visible
    <name>/versions/<v>/model.onnx, card.md, history.json, plots/...
    <name>/claims/<v>                      exclusive-create marker: version v is taken, forever
    <name>/aliases/<alias>.json            {"version": v}, replaced in one write

Contract:
- :meth:`ModelStore.publish` claims the next free version with an exclusive create (two
  concurrent publishes of one name get two distinct versions), writes the files, then the manifest;
  a reader never sees a half-written version. Version numbers are never reused, even after delete.
- :meth:`resolve` accepts ``name`` (the ``production`` alias if set, else the latest version),
  ``name@3`` and ``name@alias``; unknown ones raise :class:`~helixserve.errors.ModelNotFound`
  listing what exists.
- :meth:`pull` copies a version into a local cache keyed by the manifest's sha256, verifying every
  file while copying; a corrupted or truncated file raises
  :class:`~helixserve.errors.IntegrityError` naming it with both hashes and leaves every other
  cached version untouched. Cached copies are re-verified on every pull.
- :meth:`delete` refuses a version an alias points to unless ``force`` (which removes the aliases).
- Read-only credentials suffice for list / show / resolve / pull; writes with them raise
  :class:`~helixserve.errors.StorePermissionError`. Names are validated before any path is made.
- A store may lie over a read-only store ``under`` (the pretrained models shipped in the
  package): reads see both and writes go to this store only. A name's versions are those of both
  (a number in both is this store's); new versions are numbered after all of them, so a version
  made from a pretrained one (``--init-from``, ``quantize``) sits beside its parent. Once a name
  has a version here, its aliases are this store's only and its default is this store's
  ``production`` alias, else its newest version here: a user's model of the same name wins. The
  first version here made *from* a version below (its lineage names it: quantize, init-from)
  copies the aliases up first, so that such a candidate is not the default until promoted. Moving an
  alias of a name with no version here, or deleting a version that lives below, raises
  :class:`~helixserve.errors.StorePermissionError` saying how to copy it up first.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from helixserve.errors import (
    CacheError,
    IntegrityError,
    InvalidName,
    ManifestError,
    ModelNotFound,
    StorePermissionError,
    StoreUnavailable,
    VersionConflict,
)
from helixserve.store.bundle import sha256_bytes, verify_dir, verify_file
from helixserve.store.fs import Location, S3Options, open_location, translating
from helixserve.store.manifest import Manifest, parse_manifest
from helixserve.store.names import (
    VERSION,
    Ref,
    check_alias,
    check_name,
    check_version,
    parse_ref,
)

DEFAULT_ALIAS = "production"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/helixserve/bundles`` or ``~/.cache/helixserve/bundles``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "helixserve" / "bundles"


@dataclass(frozen=True)
class LocalBundle:
    """A verified copy of a bundle on local disk."""

    path: Path
    manifest: Manifest

    @property
    def label(self) -> str:
        """``name@version``."""
        return f"{self.manifest.name}@{self.manifest.version}"


class ModelStore:
    """Versioned model bundles in one location; see the module contract."""

    def __init__(
        self, location: Location, cache_dir: Path | None = None, under: ModelStore | None = None
    ) -> None:
        self.location = location
        self.cache_dir = cache_dir or default_cache_dir()
        self.under = under

    @classmethod
    def open(
        cls,
        uri: str,
        *,
        s3: S3Options | None = None,
        cache_dir: Path | None = None,
        under: ModelStore | None = None,
    ) -> ModelStore:
        """Open the store at a folder path or URI (``file://``, ``s3://bucket/prefix``), over the
        read-only store ``under`` if given (see the module contract)."""
        return cls(open_location(uri, s3), cache_dir, under)

    def _below(self, name: str) -> ModelStore | None:
        """The store below, when ``name`` lives only there (else ``None``: it is this store's)."""
        if self.under is None or self._own_versions(name):
            return None
        return self.under if self.under.versions(name) else None

    def _holder(self, name: str, version: int) -> ModelStore:
        """The store that holds ``name@version`` (this one unless only the one below does)."""
        if self.under is None or version in self._own_versions(name):
            return self
        return self.under if version in self.under.versions(name) else self

    def _writable(self, name: str, action: str) -> None:
        if self._below(name) is not None:
            raise StorePermissionError(
                f"{name} is a pretrained model shipped with helixserve and cannot be changed "
                f"({action}); copy it into your store first: helixserve models push {name} "
                f"--to {self.uri} (your copy then replaces it)."
            )

    @property
    def uri(self) -> str:
        """The store's location as a URI."""
        return self.location.uri

    # --- layout ---------------------------------------------------------------------------------

    def _version_dir(self, name: str, version: int) -> str:
        return self.location.path(name, "versions", str(version))

    def _manifest_path(self, name: str, version: int) -> str:
        return self._version_dir(name, version) + "/manifest.json"

    def _alias_path(self, name: str, alias: str) -> str:
        return self.location.path(name, "aliases", f"{alias}.json")

    # --- reading --------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Names of the models that have at least one visible version (here or below)."""
        with translating("list models", self.location):
            names = self.location.list_names(self.location.root)
        own = [n for n in names if _is_name(n) and self._own_versions(n)]
        below = self.under.list_models() if self.under is not None else []
        return sorted({*own, *below})

    def origin(self, name: str, version: int | None = None) -> str:
        """The URI of the store that holds ``name@version`` (default: the version ``name``
        resolves to): this one, or the one below."""
        number = version if version is not None else self.resolve(Ref(check_name(name)))
        return self._holder(name, number).uri

    def versions(self, name: str) -> list[int]:
        """Visible versions of ``name`` here and below, ascending (``[]`` if none)."""
        below = self.under.versions(name) if self.under is not None else []
        return sorted({*self._own_versions(name), *below})

    def _own_versions(self, name: str) -> list[int]:
        check_name(name)
        pattern = self.location.path(name, "versions", "*", "manifest.json")
        with translating(f"list the versions of {name}", self.location):
            found = self.location.fs.glob(pattern)
        numbers = {str(p).rstrip("/").split("/")[-2] for p in found}
        return sorted(int(n) for n in numbers if VERSION.fullmatch(n))

    def aliases(self, name: str) -> dict[str, int]:
        """Aliases of ``name`` and the versions they point to."""
        below = self._below(check_name(name))
        if below is not None:
            return below.aliases(name)
        folder = self.location.path(name, "aliases")
        with translating(f"list the aliases of {name}", self.location):
            files = self.location.list_names(folder)
        result: dict[str, int] = {}
        for file in files:
            alias = file.removesuffix(".json")
            if file.endswith(".json") and _is_name(alias):
                version = self._read_alias(name, alias)
                if version is not None:
                    result[alias] = version
        return result

    def _read_alias(self, name: str, alias: str) -> int | None:
        """The version an alias points to; ``None`` if there is no such alias."""
        try:
            with translating(f"read alias {name}@{alias}", self.location):
                data = self.location.read(self._alias_path(name, alias))
        except FileNotFoundError:
            return None
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raw = None
        version = raw.get("version") if isinstance(raw, dict) else None
        if type(version) is not int or version < 1:
            raise ManifestError(
                f"alias file {name}/aliases/{alias}.json is damaged: it should hold "
                f'{{"version": N}}. Set the alias again: helixserve models promote {name}@N {alias}'
            )
        return version

    def resolve(self, ref: str | Ref) -> int:
        """The version a reference points to; see the module contract."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        below = self._below(parsed.name)
        if below is not None:
            return below.resolve(parsed)
        versions = self.versions(parsed.name)
        if not versions:
            raise ModelNotFound(self._no_model_message(parsed.name))
        if parsed.version is not None:
            if parsed.version not in versions:
                raise ModelNotFound(
                    f"{parsed.name} has no version {parsed.version}; its versions are "
                    f"{_join(versions)}."
                )
            return parsed.version
        alias = parsed.alias or DEFAULT_ALIAS
        target = self._read_alias(parsed.name, alias)
        if target is None and parsed.alias is None:  # no production alias: the latest version,
            return (self._own_versions(parsed.name) or versions)[-1]  # yours before any below
        if target is None:
            known = self.aliases(parsed.name)
            raise ModelNotFound(
                f"{parsed.name} has no alias '{parsed.alias}'; its aliases are "
                f"{_join(sorted(known)) if known else '(none)'}."
            )
        if target not in versions:
            raise ModelNotFound(
                f"alias {parsed.name}@{alias} points to version {target}, which no longer "
                f"exists; promote another version ({_join(versions)})."
            )
        return target

    def _no_model_message(self, name: str) -> str:
        models = self.list_models()
        known = _join(models) if models else "(the store is empty)"
        where = f"the store {self.uri}" + (" or the pretrained models" if self.under else "")
        return (
            f"no model named '{name}' in {where}; models: {known}. Add one with "
            "`helixserve train ...`, `helixserve models import MODEL.onnx ...` or "
            "`helixserve models pull NAME --from URI`."
        )

    def manifest(self, ref: str | Ref) -> Manifest:
        """The manifest of the version ``ref`` resolves to."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        version = self.resolve(parsed)
        return self._read_manifest(parsed.name, version)[0]

    def _read_manifest(self, name: str, version: int) -> tuple[Manifest, bytes]:
        holder = self._holder(name, version)
        if holder is not self:
            return holder._read_manifest(name, version)
        try:
            with translating(f"read {name}@{version}", self.location):
                data = self.location.read(self._manifest_path(name, version))
        except FileNotFoundError:
            raise ModelNotFound(
                f"{name} has no version {version} (it was deleted while being read)."
            ) from None
        manifest = parse_manifest(data, where=f"manifest.json of {name}@{version}")
        if (manifest.name, manifest.version) != (name, version):
            raise IntegrityError(
                f"manifest.json of {name}@{version} describes {manifest.name}@{manifest.version}; "
                "the store was edited by hand. Publish the model again."
            )
        return manifest, data

    # --- writing --------------------------------------------------------------------------------

    def publish(self, manifest: Manifest, files: Mapping[str, bytes]) -> Manifest:
        """Publish ``files`` (path -> bytes) as the next version of ``manifest.name``."""
        name = check_name(manifest.name)
        _check_files(manifest, files)
        try:
            with translating(f"publish {name}", self.location):
                self._keep_aliases_of_parent(manifest)
                version = self._claim_next(name)
                final = manifest.model_copy(update={"version": version})
                folder = self._version_dir(name, version)
                for relative, data in sorted(files.items()):
                    self.location.write(f"{folder}/{relative}", data)
                self.location.write(self._manifest_path(name, version), final.to_json())
        except FileNotFoundError as err:
            raise StoreUnavailable(
                f"the store at {self.uri} cannot be written ({err}); check that its folder or "
                "bucket exists."
            ) from None
        return final

    def _keep_aliases_of_parent(self, manifest: Manifest) -> None:
        """Before the first version here of a name that lives below, made from one of its
        versions (quantize, init-from): copy its aliases up, so that a candidate does not become
        the default, nor ``NAME@production`` vanish, until it is promoted."""
        below = self._below(manifest.name)
        parent = manifest.lineage.parent if manifest.lineage else None
        if below is None or parent is None or not parent.startswith(f"{manifest.name}@"):
            return
        for alias, version in below.aliases(manifest.name).items():
            body = json.dumps({"version": version}).encode()
            self.location.write(self._alias_path(manifest.name, alias), body)

    def _claim_next(self, name: str) -> int:
        claims = self.location.path(name, "claims")
        taken = [int(n) for n in self.location.list_names(claims) if VERSION.fullmatch(n)]
        candidate = max([0, *taken, *self.versions(name)]) + 1
        token = uuid.uuid4().hex.encode()
        while not self.location.create_exclusive(f"{claims}/{candidate}", token):
            candidate += 1
        return candidate

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``name@alias`` at ``version`` (one atomic write)."""
        check_name(name)
        check_alias(alias)
        version = check_version(version)
        self._writable(name, f"alias {alias}")
        self.resolve(Ref(name, version=version))
        body = json.dumps({"version": version}).encode()
        with translating(f"move alias {name}@{alias}", self.location):
            self.location.write(self._alias_path(name, alias), body)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias (the version it pointed to stays)."""
        self._writable(check_name(name), f"alias {alias}")
        if self._read_alias(name, check_alias(alias)) is None:
            raise ModelNotFound(f"{name} has no alias '{alias}'.")
        with translating(f"delete alias {name}@{alias}", self.location):
            self.location.fs.rm_file(self._alias_path(name, alias))

    def delete(self, name: str, version: int, *, force: bool = False) -> None:
        """Delete a version (its number is never reused); see the module contract."""
        self._writable(check_name(name), "delete")
        self.resolve(Ref(name, version=check_version(version)))
        if self._holder(name, version) is not self:
            raise StorePermissionError(
                f"{name}@{version} is a pretrained model shipped with helixserve; it cannot be "
                "deleted (set HELIXSERVE_PRETRAINED=false to hide every pretrained model)."
            )
        pointing = sorted(a for a, v in self.aliases(name).items() if v == version)
        if pointing and not force:
            raise VersionConflict(
                f"{name}@{version} is what alias {_join(pointing)} points to; promote another "
                "version first, or delete with --force (which removes the alias too)."
            )
        with translating(f"delete {name}@{version}", self.location):
            for alias in pointing:  # one object each: a refused delete raises, never passes
                self.location.fs.rm_file(self._alias_path(name, alias))
            self.location.fs.rm_file(self._manifest_path(name, version))
            self.location.fs.rm(self._version_dir(name, version), recursive=True)

    # --- copying --------------------------------------------------------------------------------

    def read_files(self, ref: str | Ref) -> tuple[Manifest, dict[str, bytes]]:
        """The manifest and verified file contents of a version."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        version = self.resolve(parsed)
        holder = self._holder(parsed.name, version)
        if holder is not self:
            return holder.read_files(Ref(parsed.name, version=version))
        manifest = self.manifest(parsed)
        label = f"{manifest.name}@{manifest.version}"
        folder = self._version_dir(manifest.name, manifest.version)
        files: dict[str, bytes] = {}
        for relative, expected in manifest.files.items():
            data = self._read_bundle_file(folder, relative, label)
            verify_file(label, relative, expected, sha256_bytes(data))
            files[relative] = data
        return manifest, files

    def _read_bundle_file(self, folder: str, relative: str, label: str) -> bytes:
        try:
            with translating(f"read {relative} of {label}", self.location):
                return self.location.read(f"{folder}/{relative}")
        except FileNotFoundError:
            raise IntegrityError(
                f"{relative} of {label} is missing from the store; publish the model again."
            ) from None

    def copy_to(self, other: ModelStore, ref: str | Ref) -> Manifest:
        """Publish a verified copy of ``ref`` into ``other`` as its next version."""
        manifest, files = self.read_files(ref)
        return other.publish(manifest, files)

    def pull(self, ref: str | Ref) -> LocalBundle:
        """A verified local copy of ``ref`` (from the cache when it is there and intact)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        version = self.resolve(parsed)
        manifest, raw = self._read_manifest(parsed.name, version)
        target = self.cache_dir / sha256_bytes(raw)
        label = f"{manifest.name}@{manifest.version}"
        if target.exists():
            try:
                verify_dir(target, manifest, label)
                if (target / "manifest.json").read_bytes() == raw:
                    return LocalBundle(target, manifest)
            except (IntegrityError, OSError):
                pass
            shutil.rmtree(target, ignore_errors=True)  # damaged cache: fetch again below
        _, files = self.read_files(Ref(parsed.name, version=version))
        _install(target, {**files, "manifest.json": raw})
        verify_dir(target, manifest, label)  # ours, or a concurrent puller's identical copy
        return LocalBundle(target, manifest)


def _install(target: Path, files: Mapping[str, bytes]) -> None:
    """Write files into a temporary folder, then rename it into place."""
    staging = target.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        for relative, data in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise CacheError(
            f"cannot write to the local model cache {target.parent} ({err.strerror or err}); "
            "set HELIXSERVE_CACHE_DIR to a folder you can write to."
        ) from None
    try:
        staging.rename(target)
    except OSError:  # another process installed the same bundle first
        shutil.rmtree(staging, ignore_errors=True)


def _check_files(manifest: Manifest, files: Mapping[str, bytes]) -> None:
    listed, given = set(manifest.files), set(files)
    if listed != given:
        raise IntegrityError(
            f"the manifest of {manifest.name} lists {_join(sorted(listed))} but the files given "
            f"are {_join(sorted(given))}; build the manifest with make_manifest()."
        )
    for relative, data in files.items():
        verify_file(manifest.name, relative, manifest.files[relative], sha256_bytes(data))


def _is_name(text: str) -> bool:
    try:
        check_name(text)
    except InvalidName:
        return False
    return True


def _join(items: list[int] | list[str]) -> str:
    return ", ".join(str(i) for i in items)
