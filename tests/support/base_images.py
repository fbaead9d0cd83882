"""Local stand-ins for the public base images, made from Debian's packages (no image registry is
reachable from these machines), so that the project's Dockerfiles build unchanged.

Contract:
- ``debian:bookworm-slim``: ``debootstrap --variant=minbase bookworm`` from the Debian mirror
  apt uses here (:func:`debian_mirror`), trimmed like the slim images (no documentation, manual
  pages or locales, now or in later installs; no apt lists or downloaded packages kept),
  imported with ``docker import``.
  Its root file system is cached as ``bookworm-minbase-<hash>.tar`` in the cache folder (named
  after the trimming settings; debootstrap takes 25-90 s); delete the file to make it again.
- ``python:3.11-slim``: ``deploy/base/python.Dockerfile`` built on it (Debian's python3, 3.11, in
  a virtual environment first on PATH).
- The tags are the public images' names, so ``FROM python:3.11-slim`` finds the stand-in; they
  exist only in the private engine of :mod:`tests.support.docker_engine`, never in a person's
  own Docker.
- :func:`ensure_bases` returns what it did, for the report; a missing ``debootstrap`` or a
  failed one raises :class:`~tests.support.docker_engine.EngineError` (with its log's tail).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.docker_engine import Built, Engine, EngineError

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = "debian:bookworm-slim"
PYTHON = "python:3.11-slim"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the slim images leave out, for the packages installed later too (dpkg path filters).
SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""
# Like the slim images: apt deletes the packages it downloaded and keeps no binary caches.
APT_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""
TRIMMED = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian")
# The cached root file system is named after what shapes it: a change makes a new one.
ROOTFS = f"{SUITE}-minbase-{hashlib.sha256((SLIM_DPKG + APT_CLEAN).encode()).hexdigest()[:12]}"
LABEL = "org.helixserve.rootfs"


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The first ``.../debian`` URI apt's sources name for bookworm (deb822 or one-line)."""
    files = [*sorted((sources / "sources.list.d").glob("*.sources")), sources / "sources.list"]
    files += sorted((sources / "sources.list.d").glob("*.list"))
    for path in files:
        if not path.is_file():
            continue
        uris: list[str] = []
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:"):
                uris = words[1:]
            elif line.startswith("Suites:") and SUITE in words[1:]:
                found = [u for u in uris if u.rstrip("/").endswith("/debian")]
                if found:
                    return found[0].rstrip("/")
            elif line.startswith("deb ") and len(words) >= 3 and words[2] == SUITE:
                uri = next(w for w in words[1:] if "://" in w)
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return DEFAULT_MIRROR


def _debootstrap(tarball: Path) -> float:
    """Make the root file system and tar it to ``tarball``; the seconds it took."""
    if shutil.which("debootstrap") is None:
        raise EngineError("debootstrap not found: apt-get install debootstrap (.ci/run does)")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    rootfs = work / "rootfs"
    try:
        command = ["debootstrap", "--variant=minbase", SUITE, str(rootfs), debian_mirror()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EngineError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}\n{tail}")
        _trim(rootfs)
        partial = work / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            check=True,
            capture_output=True,
        )
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return time.monotonic() - started


def _trim(rootfs: Path) -> None:
    (rootfs / "etc/dpkg/dpkg.cfg.d/slim").write_text(SLIM_DPKG)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_CLEAN)
    for folder in TRIMMED:
        shutil.rmtree(rootfs / folder, ignore_errors=True)
    for doc in (rootfs / "usr/share/doc").glob("*/*"):
        if doc.name == "copyright" or doc.parent.is_symlink():
            continue
        if doc.is_dir() and not doc.is_symlink():
            shutil.rmtree(doc)
        else:
            doc.unlink()
    for folder in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
        for item in (rootfs / folder).rglob("*"):
            if item.is_file() and item.name != "lock":
                item.unlink()


def ensure_bases(engine: Engine, cache: Path) -> list[str]:
    """Make both stand-ins in ``engine`` where missing (module contract); lines for the report."""
    report: list[str] = []
    tarball = cache / f"{ROOTFS}.tar"
    if not tarball.exists():
        for stale in cache.glob(f"{SUITE}-minbase*.tar"):
            stale.unlink()
        seconds = _debootstrap(tarball)
        report.append(
            f"debootstrap --variant=minbase {SUITE}: {seconds:.1f} s, "
            f"{tarball.stat().st_size / 1e6:.0f} MB root file system"
        )
    imported = engine.docker(
        "image",
        "inspect",
        DEBIAN,
        "--format",
        f'{{{{index .Config.Labels "{LABEL}"}}}}',
        check=False,
    )
    if imported.stdout.strip() != ROOTFS:
        started = time.monotonic()
        changes = ["--change", 'CMD ["bash"]', "--change", f"LABEL {LABEL}={ROOTFS}"]
        engine.docker("import", *changes, str(tarball), DEBIAN, timeout=300)
        report.append(f"docker import {DEBIAN}: {time.monotonic() - started:.1f} s")
    folder = ROOT / "deploy" / "base"
    built: Built = engine.build(PYTHON, folder, dockerfile=folder / "python.Dockerfile")
    report.append("stand-in " + built.describe())
    return report
