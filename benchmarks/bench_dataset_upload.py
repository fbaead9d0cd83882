"""Benchmark: dataset upload (store put + profile) time, and peak memory flat in the file's size.

Run with ``make bench`` (or ``python -m benchmarks.bench_dataset_upload``). It writes CSV files of
``--rows`` rows (default 100,000 and 1,000,000) with a 50-nt random DNA ``sequence``, a ``score``
number and a ``split`` column (T / V / test), like the yeast tutorial's data. Each file is
handled in a fresh child process that stores it with
:meth:`~helixserve.store.datasets.DatasetBlobs.put` (into a local store) and then
:func:`~helixserve.workspace.tables.profile` s the stored copy; the child reports its times and
its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the imports and
at the end, so the table shows whether memory grows with the file (it should not: both steps
stream).

``--http`` measures instead the upload of a big file through the server
(:mod:`benchmarks.bench_dataset_http`: the workspace API's upload route, raw body and multipart
form, the server's resident memory sampled while it streams, throughput beside this disk's write
speed measured in the same run).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

LENGTH = 50


class Figures(TypedDict):
    """What one child process reports."""

    rows: int
    bytes: int
    put_s: float
    profile_s: float
    roles: dict[str, str]
    imports_mib: float
    peak_mib: float


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` rows of sequence,score,split in blocks of 100,000 (constant memory)."""
    import numpy as np  # noqa: PLC0415 - only in the child that writes the file

    splits_of = np.array(["T", "V", "test"])
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with path.open("w", encoding="ascii") as out:
        out.write("sequence,score,split\n")
        for start in range(0, rows, 100_000):
            count = min(100_000, rows - start)
            seqs = letters[rng.integers(0, 4, size=(count, LENGTH))].view(f"S{LENGTH}").ravel()
            scores = rng.normal(size=count)
            splits = splits_of[rng.choice(3, size=count, p=[0.8, 0.1, 0.1])]
            block = io.StringIO()
            for seq, score, split in zip(seqs, scores, splits, strict=True):
                block.write(f"{seq.decode()},{score:.6f},{split}\n")
            out.write(block.getvalue())


def peak_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: Path, store: Path) -> None:
    """Store and profile one file; print the figures as one JSON line."""
    from helixserve.store.datasets import DatasetBlobs  # noqa: PLC0415 - measured after imports
    from helixserve.workspace.rows import ProfileLimits  # noqa: PLC0415
    from helixserve.workspace.tables import profile  # noqa: PLC0415

    after_imports = peak_mib()
    blobs = DatasetBlobs(str(store))
    start = time.perf_counter()
    with path.open("rb") as stream:
        blob = blobs.put(stream, path.name, limit_bytes=1 << 40)
    put_s = time.perf_counter() - start
    start = time.perf_counter()
    result = profile(blobs.local_copy(blob.sha256, store / "cache"), blob.filename, ProfileLimits())
    profile_s = time.perf_counter() - start
    figures = Figures(
        rows=result.rows,
        bytes=blob.size,
        put_s=put_s,
        profile_s=profile_s,
        roles=dict(result.roles()),
        imports_mib=after_imports,
        peak_mib=peak_mib(),
    )
    print(json.dumps(figures))


def run_self(*args: str) -> str:
    """Run this module in a fresh interpreter with ``args``; its standard output.

    The parent stays small (no numpy, no helixserve): Linux keeps a process's peak RSS across
    fork and exec, so a child's ``ru_maxrss`` starts at its parent's RSS."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_dataset_upload", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def measure(path: Path, store: Path) -> Figures:
    """Run :func:`child` in a fresh interpreter and return what it printed."""
    figures: Figures = json.loads(run_self("--child", str(path), str(store)).strip())
    return figures


def line(got: Figures) -> str:
    """One row of the printed table."""
    rate = got["rows"] / got["profile_s"]
    return (
        f"{got['rows']:>10,} {got['bytes'] / 1e6:>7.1f} {got['put_s']:>7.2f} "
        f"{got['profile_s']:>10.2f} {rate:>9,.0f} {got['imports_mib']:>16.1f} "
        f"{got['peak_mib']:>13.1f}  {got['roles']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", nargs=2, metavar=("FILE", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=2, metavar=("FILE", "ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--http", action="store_true", help="a big file through the server")
    parser.add_argument("--mb", type=int, default=1000, help="--http: the file's size in MB")
    parser.add_argument("--out", type=Path, help="--http: also append the output to this file")
    parser.add_argument("--before", metavar="REF", help="--http: also measure this git commit")
    parser.add_argument("--rounds", type=int, default=1, help="--http: servers of each code")
    args = parser.parse_args()
    if args.http:
        from benchmarks.bench_dataset_http import measure_http  # noqa: PLC0415 - parent stays small

        measure_http(args.mb * 1_000_000, args.out, args.before, args.rounds)
        return
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    if args.make:
        make_csv(Path(args.make[0]), int(args.make[1]))
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", {platform.platform()}; one child process per file, local folder store"
    )
    print(
        f"{'rows':>10} {'MB':>7} {'put s':>7} {'profile s':>10} {'rows/s':>9} "
        f"{'RSS imports MiB':>16} {'peak RSS MiB':>13}  roles"
    )
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            path = Path(folder) / f"bench_{rows}.csv"
            run_self("--make", str(path), str(rows))
            got = measure(path, Path(folder) / f"store_{rows}")
            path.unlink()
            print(line(got))


if __name__ == "__main__":
    main()
