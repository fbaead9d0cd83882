"""Benchmark: a big dataset file through the server's upload route (bench_dataset_upload --http).

Run with ``make bench`` (or ``python -m benchmarks.bench_dataset_upload --http [--mb 1000]``;
``--out FILE`` also appends the output to FILE). Everything happens in one temporary folder,
deleted at the end with every file in it:

1. A CSV of ``--mb`` MB (default 1,000): a 1,000-nt random DNA ``sequence`` (a gene, as in U4), a
   ``score`` and a ``split`` (T / V / test) per row, about 1,015 bytes a row, so 1 GB is about
   985,000 rows: under the default ``HELIXSERVE_MAX_UPLOAD_RECORDS`` (1,000,000).
2. This disk's write speed for the same number of bytes in the same folder, with ``dd
   if=/dev/zero bs=1M``: once without fsync (into the page cache, as the server writes) and once
   with ``conv=fsync`` (on the disk), twice each, alternating, with dd's own CPU seconds per GB;
   the best of each is what the uploads are compared with. dd runs again after the uploads.
3. ``helixserve serve`` with the README defaults (``workers`` ``auto``, access log on, the
   pretrained models) but ``HELIXSERVE_MAX_UPLOAD_BYTES`` = 2 GiB (the default, 200 MiB, answers
   a 1 GB file with 413) and no worker, on a fresh workspace; project ``lab`` and datasets
   ``raw`` and ``form`` made through the API.
4. ``POST /api/v1/projects/lab/datasets/raw/versions?filename=genes.csv`` with the file as the raw
   body (``Content-Length`` set; the CLI's and notebooks' way), then the same file as
   ``multipart/form-data`` (a browser form's way; httpx's encoder) to dataset ``form``. A thread
   samples every 0.1 s each server process's resident memory and CPU time
   (``/proc/<pid>/stat``), the bytes the client has handed to its socket and whether the
   server's temporary upload file (``datasets/tmp/*.part``) exists.
5. Reported per upload: seconds until the client sent the last byte; ``stored``: the request's
   start until the temporary file is gone (hashed, written, moved to its sha256 address), its
   MB/s beside dd's, and the server's CPU seconds per GB until then (a figure the machine's
   other load changes far less than MB/s); the 201 (after the profile of every row); the
   resident memory of the process that took the upload (the one that used the most CPU) and of
   all server processes together before, when the client had sent each quarter of the body, at
   its peak while the body streamed and at its peak while the file was profiled.

``--before REF`` also measures the code of a git commit (as :mod:`benchmarks.bench_watchers`
does), ``--rounds N`` servers of each code, interleaved; medians per code and way at the end.
"""

from __future__ import annotations

import datetime
import io
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import httpx

from benchmarks.bench_watchers import extract, serving, session_cpu, session_rss, session_stats
from benchmarks.goals import record

LENGTH = 1000
ROWS_PER_BLOCK = 10_000
MAX_UPLOAD = str(2 << 30)
MB = 1_000_000
MIB = 1 << 20


def make_genes(path: Path, size: int, seed: int = 0) -> int:
    """Write rows of sequence,score,split until the file holds ``size`` bytes or more; the rows."""
    import numpy as np  # noqa: PLC0415 - only here

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    splits = np.array([b"T", b"V", b"test"])
    written, rows = 0, 0
    with path.open("wb") as out:
        written += out.write(b"sequence,score,split\n")
        while written < size:
            seqs = letters[rng.integers(0, 4, size=(ROWS_PER_BLOCK, LENGTH))]
            scores = rng.normal(size=ROWS_PER_BLOCK)
            parts = splits[rng.choice(3, size=ROWS_PER_BLOCK, p=[0.8, 0.1, 0.1])]
            block = io.BytesIO()
            for seq, score, part in zip(seqs, scores, parts, strict=True):
                block.write(seq.tobytes() + f",{score:.6f},".encode() + part + b"\n")
            written += out.write(block.getvalue())
            rows += ROWS_PER_BLOCK
    return rows


@dataclass
class Disk:
    """``dd`` writing the file's size: MB/s and CPU seconds per GB (dd's own, mostly the
    kernel's copy into the page cache)."""

    name: str
    mb_s: float
    cpu_s_per_gb: float


def dd_speed(folder: Path, size: int, fsync: bool) -> Disk:
    """``dd`` writing ``size`` bytes (rounded up to MiB) of zeros into ``folder``."""
    target = folder / "dd.bin"
    command = ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={-(-size // MIB)}"]
    if fsync:
        command.append("conv=fsync")
    subprocess.run(["sync"], check=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    written = target.stat().st_size
    target.unlink()
    name = "fsync" if fsync else "page cache"
    return Disk(name, written / MB / seconds, cpu / (written / 1e9))


# --- sampling ---------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    sent: int
    storing: bool
    rss: dict[int, int]
    cpu: float  # CPU seconds of the server's processes so far


@dataclass
class Progress:
    """Shared by the client and the sampler."""

    sent: int = 0
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def sample(progress: Progress, session_id: int, temp: Path, start: float) -> None:
    while not progress.stop.wait(0.1):
        storing = any(temp.glob("*.part")) if temp.is_dir() else False
        rss, cpu = session_rss(session_id), session_cpu(session_id)[0]
        progress.samples.append(Sample(time.monotonic() - start, progress.sent, storing, rss, cpu))


class Counted(io.RawIOBase):
    """The file for httpx's multipart encoder, counting what it reads."""

    def __init__(self, path: Path, progress: Progress) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self._progress.sent += count
        return count

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()
        super().close()


def chunks(path: Path, progress: Progress) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(MIB):
            yield chunk
            progress.sent += len(chunk)


# --- one upload -------------------------------------------------------------------------------


@dataclass
class Upload:
    code: str
    way: str
    size: int
    store_cpu_s: float = 0.0  # the server's CPU seconds from the start until stored
    sent_s: float = 0.0
    stored_s: float = 0.0
    total_s: float = 0.0
    rows: int = 0
    samples: list[Sample] = field(default_factory=list)
    cpu_pid: int = 0


def send(client: httpx.Client, url: str, path: Path, way: str, progress: Progress) -> Any:
    if way == "raw":
        headers = {"Content-Type": "text/csv", "Content-Length": str(path.stat().st_size)}
        content = chunks(path, progress)
        reply = client.post(url, params={"filename": path.name}, content=content, headers=headers)
    else:
        with Counted(path, progress) as counted:
            form = {"file": (path.name, cast(IO[bytes], counted), "text/csv")}
            reply = client.post(url, files=form)
    if reply.status_code != 201:
        raise SystemExit(f"{way} upload: {reply.status_code} {reply.text[:500]}")
    return reply.json()


def upload(base: str, session_id: int, folder: Path, path: Path, way: str) -> Upload:
    progress = Progress()
    done = Upload("", way, path.stat().st_size)
    ticks = {pid: int(f[11]) + int(f[12]) for pid, f in session_stats(session_id).items()}
    cpu0 = session_cpu(session_id)[0]
    start = time.monotonic()
    temp = folder / "workspace" / "datasets" / "tmp"
    sampler = threading.Thread(target=sample, args=(progress, session_id, temp, start))
    sampler.start()
    url = f"{base}/api/v1/projects/lab/datasets/{way}/versions"
    try:
        with httpx.Client(timeout=httpx.Timeout(60, read=None, write=None)) as client:
            version = send(client, url, path, way, progress)
    finally:
        done.total_s = time.monotonic() - start
        progress.stop.set()
        sampler.join()
    done.samples = progress.samples
    done.rows = int(version["rows"])
    done.sent_s = next(s.at for s in done.samples if s.sent >= done.size)
    seen = [s for s in done.samples if s.storing]
    stored = next((s for s in done.samples if seen and s.at > seen[-1].at), None)
    if stored is None:
        raise SystemExit(f"{way}: the 0.1 s samples never saw the upload stored; upload more MB")
    done.stored_s, done.store_cpu_s = stored.at, stored.cpu - cpu0
    after = session_stats(session_id)
    used = {pid: int(f[11]) + int(f[12]) - ticks.get(pid, 0) for pid, f in after.items()}
    done.cpu_pid = max(used, key=lambda pid: used[pid])
    return done


# --- the report -------------------------------------------------------------------------------


def _mib(rss: dict[int, int], pid: int | None = None) -> float:
    return (rss.get(pid, 0) if pid is not None else sum(rss.values())) / MIB


def memory_lines(done: Upload, before: dict[int, int]) -> list[str]:
    """RSS of the process that took the upload and of all server processes, over the upload."""
    points: list[tuple[str, dict[int, int]]] = [("before", before)]
    for quarter in (0.25, 0.5, 0.75, 1.0):
        got = next(s for s in done.samples if s.sent >= quarter * done.size)
        points.append((f"{quarter:.0%} sent", got.rss))
    storing = [s for s in done.samples if s.at <= done.stored_s] or done.samples[:1]
    profiling = [s for s in done.samples if s.at > done.stored_s] or done.samples[-1:]
    for label, part in (("peak storing", storing), ("peak profiling", profiling)):
        points.append((label, max((s.rss for s in part), key=lambda r: r.get(done.cpu_pid, 0))))
    one = ", ".join(f"{label} {_mib(rss, done.cpu_pid):.0f}" for label, rss in points)
    every = ", ".join(f"{label} {_mib(rss):.0f}" for label, rss in points)
    return [
        f"  RSS MiB, the process that took it: {one}",
        f"  RSS MiB, all {len(before)} server processes: {every}",
    ]


def report(done: Upload, disk: list[Disk], before: dict[int, int]) -> list[str]:
    rate = done.size / MB / done.stored_s
    ratios = ", ".join(f"{rate / d.mb_s:.2f}x dd {d.name}" for d in disk)
    return [
        f"{done.code} {done.way}: {done.size / MB:,.0f} MB, {done.rows:,} rows; last byte sent "
        f"{done.sent_s:.1f} s; stored {done.stored_s:.1f} s = {rate:,.0f} MB/s ({ratios}), "
        f"server CPU {done.store_cpu_s / (done.size / 1e9):.2f} s/GB; 201 after "
        f"{done.total_s:.1f} s (profile {done.total_s - done.stored_s:.1f} s)",
        *memory_lines(done, before),
    ]


def _workspace(base: str) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        made = [client.post("/api/v1/projects", json={"name": "lab"})]
        for name in ("raw", "form"):
            made.append(client.post("/api/v1/projects/lab/datasets", json={"name": name}))
        for reply in made:
            if reply.status_code != 201:
                raise SystemExit(f"{reply.request.url}: {reply.status_code} {reply.text[:300]}")


Say = Callable[[str], None]


def _one_server(
    folder: Path, path: Path, code: tuple[str, Path | None], disk: list[Disk], say: Say
) -> list[Upload]:
    """A fresh server on a fresh workspace in ``folder``; the raw and the form upload."""
    folder.mkdir()
    database = f"sqlite:///{folder / 'upload.db'}"
    limit = {"HELIXSERVE_MAX_UPLOAD_BYTES": MAX_UPLOAD}
    done: list[Upload] = []
    with serving(folder, database, code[1], limit) as (base, session_id):
        _workspace(base)
        for way in ("raw", "form"):
            before = session_rss(session_id)
            done.append(upload(base, session_id, folder, path, way))
            done[-1].code = code[0]
            for line in report(done[-1], disk, before):
                say(line)
    subprocess.run(["rm", "-rf", str(folder)], check=True)  # the stored copies: 2 GB
    return done


def medians(done: list[Upload], say: Say) -> None:
    for code in dict.fromkeys(u.code for u in done):
        for way in ("raw", "form"):
            mine = [u for u in done if u.code == code and u.way == way]
            rate = statistics.median(u.size / MB / u.stored_s for u in mine)
            cpu = statistics.median(u.store_cpu_s / (u.size / 1e9) for u in mine)
            say(
                f"{code} {way}, median of {len(mine)}: stored {rate:,.0f} MB/s, server CPU "
                f"{cpu:.2f} s/GB while storing"
            )


def _measure(folder: Path, size: int, before: str | None, rounds: int, say: Say) -> None:
    path = folder / "genes.csv"
    rows = make_genes(path, size)
    say(f"file: {path.stat().st_size:,} bytes, {rows:,} rows of 1,000-nt sequence,score,split")
    disk = disk_speeds(folder, path.stat().st_size, "before the uploads", say)
    codes: list[tuple[str, Path | None]] = [("this", None)]
    if before:
        codes.insert(0, ("before", extract(before, folder)))
    done: list[Upload] = []
    for number in range(rounds):
        for code in codes if number % 2 == 0 else codes[::-1]:
            done += _one_server(folder / f"r{number}-{code[0]}", path, code, disk, say)
    medians(done, say)
    disk_speeds(folder, path.stat().st_size, "after the uploads", say)
    record_goal([u for u in done if u.code == "this"], disk, rounds)


def record_goal(done: list[Upload], disk: list[Disk], rounds: int) -> None:
    """Issue 19's upload row (:mod:`benchmarks.goals`): MB/s against dd with fsync, and the
    largest RSS growth of the process that took an upload (peak minus its first sample)."""
    fsync = next(d for d in disk if d.name == "fsync")
    parts, growth = [], 0.0
    for way in ("raw", "form"):
        mine = [u for u in done if u.way == way]
        rate = statistics.median(u.size / MB / u.stored_s for u in mine)
        parts.append(f"{way} {rate:,.0f} MB/s ({rate / fsync.mb_s:.2f}x dd fsync)")
        for u in mine:
            rss = [s.rss.get(u.cpu_pid, 0) for s in u.samples if u.cpu_pid in s.rss]
            growth = max(growth, (max(rss) - rss[0]) / MIB if rss else 0.0)
    record(
        "upload",
        f"{', '.join(parts)}; dd fsync {fsync.mb_s:,.0f} MB/s; RSS growth at most "
        f"{growth:.0f} MiB over the whole upload (storing and profiling)",
        None,
        f"`helixserve serve` defaults, 1 GB CSV, raw body and multipart, {rounds} round(s)",
    )


def disk_speeds(folder: Path, size: int, when: str, say: Say) -> list[Disk]:
    """dd without and with fsync, twice each, alternating; the best of each."""
    runs = [dd_speed(folder, size, fsync) for fsync in (False, True, False, True)]
    for d in runs:
        say(f"dd {when}, {d.name}: {d.mb_s:,.0f} MB/s, dd's CPU {d.cpu_s_per_gb:.2f} s/GB")
    return [
        max((d for d in runs if d.name == name), key=lambda d: d.mb_s)
        for name in ("page cache", "fsync")
    ]


def measure_http(size: int, out: Path | None, before: str | None = None, rounds: int = 1) -> None:
    """The whole ``--http`` benchmark (see the module contract)."""
    shown: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        shown.append(line)

    now = datetime.datetime.now(datetime.UTC)
    say(
        f"# bench_dataset_upload --http --mb {size // MB} --rounds {rounds}"
        f"{f' --before {before}' if before else ''} ({now:%Y-%m-%d %H:%M} UTC, load average "
        f"{os.getloadavg()[0]:.2f})"
    )
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {platform.platform()}; server: helixserve serve, README defaults (workers auto, access "
        f"log on), HELIXSERVE_MAX_UPLOAD_BYTES={MAX_UPLOAD}, HELIXSERVE_WORKER=false, SQLite"
    )
    with tempfile.TemporaryDirectory() as scratch:
        _measure(Path(scratch), size, before, rounds, say)
    say(f"load average after: {os.getloadavg()[0]:.2f}; scratch folder deleted")
    if out is not None:
        with out.open("a") as handle:
            handle.write("\n".join(shown) + "\n\n")
