"""A private Docker engine for the image tests (``make image``): Debian's ``docker.io`` daemon.

Contract:
- :func:`private_engine` starts ``dockerd`` as its own instance: data root under the cache folder
  (:func:`cache_dir`; images and build cache survive between runs), exec root, pid file, Unix
  socket and client configuration in a fresh temporary folder, its own containerd namespaces, an
  empty ``daemon.json``. It makes no bridge, no firewall rule and no sysctl change
  (``--bridge=none --iptables=false --ip-forward=false``): containers and builds use the host's
  network, so what they serve is reached on 127.0.0.1 and nothing else is touched. It waits
  until the engine answers (60 s), then removes any container and volume a killed earlier run
  left. One run at a time holds the cache (a lock; a second run waits up to 10 minutes).
- On exit it removes every container and volume and untagged image, trims the build cache to
  4 GB, stops the daemon (SIGTERM; SIGKILL after 30 s)
  and so its containerd, unmounts whatever is still mounted under its folders and deletes the
  temporary folder.
- No ``dockerd``, a daemon that exits or does not answer: :class:`EngineError`, with the reason
  and the tail of the daemon's log. Nothing is skipped: the caller's test fails.
- :meth:`Engine.docker` runs Debian's client (``/usr/bin/docker``: the ``docker`` first on PATH
  here lacks BuildKit) against the socket with ``DOCKER_BUILDKIT=1``; :meth:`Engine.build`
  builds with BuildKit on the host's network, handing pip its CA bundle (:func:`pip_ca_bundle`)
  as the build secret ``ca`` and a configuration naming it as the secret ``pip.conf`` (the
  Dockerfiles' convention): no layer keeps either.
"""

from __future__ import annotations

import configparser
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
CLIENT = "/usr/bin/docker"
COMPOSE = "/usr/bin/docker-compose"
INSTALL = "apt-get install docker.io docker-compose debootstrap (.ci/run does)"


class EngineError(RuntimeError):
    """The private engine could not start, or a command against it failed."""


def cache_dir() -> Path:
    """``$HELIXSERVE_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/helixserve/image`` (``~/.cache``)."""
    chosen = os.environ.get("HELIXSERVE_IMAGE_CACHE")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "helixserve" / "image"


def pip_ca_bundle() -> Path | None:
    """The CA bundle pip uses here: ``PIP_CERT``, else ``cert`` in pip's configuration files,
    else ``SSL_CERT_FILE``; ``None`` when none names an existing file."""
    candidates = [os.environ.get("PIP_CERT")]
    for name in ("/etc/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf"):
        config = configparser.ConfigParser()
        config.read(os.path.expanduser(name))
        candidates.append(config.get("global", "cert", fallback=None))
    candidates.append(os.environ.get("SSL_CERT_FILE"))
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@dataclass(frozen=True)
class Built:
    """An image built: its tag, build time, size and how many build steps came from cache."""

    tag: str
    seconds: float
    size_bytes: int
    cached_steps: int
    steps: int

    def describe(self) -> str:
        warm = f"{self.cached_steps} of {self.steps} steps from the build cache"
        return f"{self.tag}: {self.size_bytes / 1e6:.0f} MB, built in {self.seconds:.1f} s ({warm})"


@dataclass
class Engine:
    """A running private engine (see the module contract)."""

    socket: Path
    folder: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """The environment for a client of this engine (and no other)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
        env.update(
            DOCKER_HOST=self.host,
            DOCKER_BUILDKIT="1",
            COMPOSE_DOCKER_CLI_BUILD="1",
            DOCKER_CONFIG=str(self.folder / "client"),
            PATH=f"/usr/bin:{env.get('PATH', '/bin')}",  # Debian's client before /usr/local's
        )
        return env

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; :class:`EngineError` when it fails."""
        done = subprocess.run(
            [CLIENT, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise EngineError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def compose(
        self,
        files: Sequence[Path],
        project: str,
        *args: str,
        env: dict[str, str] | None = None,
        directory: Path | None = None,
    ) -> str:
        """Run ``docker-compose -p PROJECT -f FILE... ARGS`` (Debian's compose 1.29) with ``env``
        added to the environment, relative paths taken from ``directory`` (default: the first
        file's folder); its output (stdout + stderr)."""
        if not Path(COMPOSE).exists():
            raise EngineError(f"{COMPOSE} not found: {INSTALL}")
        options = [arg for path in files for arg in ("-f", str(path))]
        if directory is not None:
            options += ["--project-directory", str(directory)]
        done = subprocess.run(
            [COMPOSE, "-p", project, *options, *args],
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise EngineError(
                f"docker-compose {' '.join(args)} exited {done.returncode}:\n{output}"
            )
        return output

    def build(
        self,
        tag: str,
        context: Path,
        *,
        dockerfile: Path | None = None,
        target: str | None = None,
        build_args: dict[str, str] | None = None,
        pip_options: dict[str, str] | None = None,
        timeout: float = 900,
    ) -> Built:
        """Build ``tag`` (see the module contract); the log goes to the engine's folder.
        ``pip_options`` go into the ``pip.conf`` secret's ``[global]`` section (secrets, unlike
        build arguments, are not part of the build cache's key)."""
        command = ["build", "--progress", "plain", "--network", "host", "-t", tag]
        command += ["-f", str(dockerfile or context / "Dockerfile")]
        if target:
            command += ["--target", target]
        options = dict(pip_options or {})
        ca = pip_ca_bundle()
        if ca is not None:
            command += ["--secret", f"id=ca,src={ca}"]
            options.setdefault("cert", "/run/secrets/ca")
        config = self.folder / f"pip-{len(list(self.folder.glob('pip-*.conf')))}.conf"
        config.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
        command += ["--secret", f"id=pip.conf,src={config}"]
        for name, value in (build_args or {}).items():
            command += ["--build-arg", f"{name}={value}"]
        started = time.monotonic()
        done = self.docker(*command, str(context), check=False, timeout=timeout)
        seconds = time.monotonic() - started
        log = self.folder / f"build-{tag.replace('/', '_').replace(':', '_')}.log"
        log.write_text(done.stderr)
        if done.returncode != 0:
            raise EngineError(f"docker build of {tag} failed:\n{done.stderr[-6000:]}")
        steps = [line for line in done.stderr.splitlines() if line.startswith("#")]
        named = {  # "#7 [stage 2/6] RUN ...": the Dockerfile's steps, but FROM (never cached)
            line.split()[0]
            for line in steps
            if " [" in line and "/" in line.split("]")[0] and "] FROM " not in line
        }
        cached = {line.split()[0] for line in steps if line.endswith(" CACHED")}
        return Built(tag, seconds, self.size(tag), len(cached & named), len(named))

    def size(self, tag: str) -> int:
        """The image's size in bytes, as ``docker image inspect`` reports it."""
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)

    def inspect(self, container: str) -> dict[str, object]:
        """``docker inspect CONTAINER``'s object."""
        found: list[dict[str, object]] = json.loads(self.docker("inspect", container).stdout)
        return found[0]

    def wait_healthy(self, container: str, timeout: float = 120) -> None:
        """Wait until the container's HEALTHCHECK passes; :class:`EngineError` (with its logs)
        when it exits, turns unhealthy or is still starting after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            state = self.docker("inspect", "--format", "{{json .State}}", container).stdout
            parsed = json.loads(state)
            status = parsed.get("Health", {}).get("Status", "none")
            if status == "healthy":
                return
            if not parsed["Running"] or status == "unhealthy":
                break
            time.sleep(0.5)
        logs = self.docker("logs", "--tail", "40", container, check=False)
        raise EngineError(
            f"container {container} is not healthy (health: {status}):\n{logs.stdout}{logs.stderr}"
        )

    def tidy(self) -> None:
        """Drop untagged images and keep the build cache under 4 GB (the cache folder grows
        with each changed build otherwise)."""
        self.docker("image", "prune", "-f", timeout=300)
        self.docker("builder", "prune", "-f", "--keep-storage", "4g", timeout=300)

    def clear(self) -> None:
        """Remove every container and volume of this (private) engine."""
        ids = self.docker("ps", "-aq").stdout.split()
        if ids:
            self.docker("rm", "-f", "-v", *ids, timeout=120)
        self.docker("volume", "prune", "-f")


def _daemon_command(data_root: Path, folder: Path) -> list[str]:
    config = folder / "daemon.json"
    config.write_text("{}\n")
    return [
        DOCKERD,
        f"--config-file={config}",
        f"--data-root={data_root}",
        f"--exec-root={folder / 'exec'}",
        f"--pidfile={folder / 'docker.pid'}",
        f"--host=unix://{folder / 'docker.sock'}",
        "--containerd-namespace=helixserve-image",
        "--containerd-plugins-namespace=helixserve-image-plugins",
        "--storage-driver=overlay2",
        "--bridge=none",
        "--iptables=false",
        "--ip-forward=false",
        "--log-level=warn",
    ]


def _wait_answering(engine: Engine, daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise EngineError(
                f"dockerd exited with {daemon.returncode}: {_tail(log)}\n"
                "This machine cannot run the Docker engine, so the images cannot be built here."
            )
        if engine.docker("version", check=False, timeout=10).returncode == 0:
            return
        time.sleep(0.3)
    raise EngineError(f"dockerd did not answer within 60 s: {_tail(log)}")


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    return text or "(it wrote no log)"


@contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "lock").open("w") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(f"another run holds {cache} (waited 10 minutes)") from None
                time.sleep(1)
        yield


@contextmanager
def private_engine(cache: Path | None = None) -> Iterator[Engine]:
    """Start a private engine, yield it, and remove everything it started (module contract)."""
    if not Path(DOCKERD).exists() or not Path(CLIENT).exists():
        raise EngineError(f"{DOCKERD} or {CLIENT} not found: {INSTALL}")
    if os.geteuid() != 0:
        raise EngineError("the private Docker engine needs root (dockerd, debootstrap)")
    cache = cache or cache_dir()
    with _cache_lock(cache):
        folder = Path(tempfile.mkdtemp(prefix="hs-docker-"))  # short: socket paths are limited
        (folder / "client").mkdir()
        log = folder / "dockerd.log"
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                _daemon_command(cache / "docker", folder),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        engine = Engine(folder / "docker.sock", folder)
        try:
            _wait_answering(engine, daemon, log)
            engine.clear()
            yield engine
        finally:
            _stop(engine, daemon, [cache / "docker", folder])


def _stop(engine: Engine, daemon: subprocess.Popen[bytes], roots: list[Path]) -> None:
    try:
        if daemon.poll() is None:
            engine.clear()
            engine.tidy()
    except EngineError:
        pass  # not answering: the daemon still stops below, and the next start clears it
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=30)
        _unmount_under(roots)
        shutil.rmtree(engine.folder, ignore_errors=True)


def _unmount_under(roots: list[Path]) -> None:
    """Lazily unmount what a stopped daemon left mounted under ``roots`` (deepest first)."""
    prefixes = tuple(str(root.resolve()) + "/" for root in roots)
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefixes)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
