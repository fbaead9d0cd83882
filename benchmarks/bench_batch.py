"""Benchmark: `helixserve predict` end to end vs the model alone, and memory vs file size.

Run with ``python -m benchmarks.bench_batch`` (part of ``make bench``). It generates gzipped CSV
files of random 50-nt sequences (the yeast-UTR shape), then:

1. throughput: scores ``--rows`` sequences with the U2-shaped CNN (the shipped ``yeast-utr``
   model when the zoo has it, else the Cuperus et al. CNN with random weights) through the CLI,
   and compares rows/s with the model-only throughput of the same ONNX session (same threads,
   same batch size) on already-encoded batches;
2. memory: peak RSS (``VmHWM``) of the CLI process scoring 1x and 10x ``--memory-rows`` rows with
   the small ``primer-binding`` model: flat means constant memory;
3. int8: ``models quantize`` of the CNN, then model-only throughput int8 vs fp32, and how much
   the predictions move (R2 of int8 against fp32 on the generated sequences, and the R2 change
   on the zoo's yeast-utr test split when ``../shared/data`` is there).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_store_runtime import CuperusCNN, export, publish, random_sequences
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import Predictor
from helixserve.store import ModelStore, OutputSchema
from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE

BIN = Path(sys.executable).parent


def write_csv(path: Path, rows: int, seed: int = 0, bad_every: int = 0) -> None:
    """A gzipped ``id,sequence`` CSV of random 50-nt sequences; with ``bad_every``, every such
    record gets an ``X`` at position 21 (so it is refused)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with gzip.open(path, "wt", compresslevel=1) as out:
        out.write("id,sequence\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            codes = letters[rng.integers(0, 4, size=(n, 50))]
            for i, row in enumerate(codes):
                seq = row.tobytes().decode()
                if bad_every and (start + i) % bad_every == 0:
                    seq = seq[:20] + "X" + seq[21:]
                out.write(f"u{start + i},{seq}\n")


def cnn_store(scratch: Path) -> tuple[ModelStore, str]:
    if (ZOO_STORE / "yeast-utr").is_dir():
        store = ModelStore.open(str(scratch / "store"), cache_dir=scratch / "cache")
        shutil.copytree(ZOO_STORE / "yeast-utr", scratch / "store" / "yeast-utr")
        return store, "yeast-utr"
    store = ModelStore.open(str(scratch / "store"), cache_dir=scratch / "cache")
    schema = SequenceSchema(
        min_length=1,
        max_length=50,
        pad_to=50,
        padding="left",
        flank_left="ACGTACGTAC",
        flank_right="GTACGTACGT",
    )
    publish(
        store, "cuperus", export(CuperusCNN(), 70, "value"), schema, "regression", OutputSchema()
    )
    return store, "cuperus"


def run_cli(
    store: ModelStore, model: str, data: Path, out: Path, batch: int, workers: int
) -> tuple[float, int]:
    """Seconds and peak RSS (kB) of one `helixserve predict` run."""
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(store.cache_dir)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(BIN / "helixserve"),
            "predict",
            model,
            str(data),
            "-o",
            str(out),
            "--store",
            store.uri,
            "--batch-size",
            str(batch),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
        except (FileNotFoundError, AttributeError, ProcessLookupError):
            pass
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(process.stderr.read().decode() if process.stderr else "failed")
    return time.perf_counter() - started, peak


def model_only(predictor: Predictor, batch: int, repeat: int = 20) -> float:
    """Sequences/s of the bare ONNX Runtime call on encoded batches."""
    tensor = predictor.prepare(random_sequences(batch, 50, seed=7)).tensor
    assert tensor is not None
    predictor.run(tensor)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            predictor.run(tensor)
        runs.append(batch * repeat / (time.perf_counter() - started))
    return statistics.median(runs)


def quantized(store: ModelStore, model: str) -> str:
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(store.cache_dir)}
    command = [str(BIN / "helixserve"), "models", "quantize", model, "--store", store.uri]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"published (\S+@\d+)", out.stdout)
    if match is None:
        raise RuntimeError(out.stdout + out.stderr)
    return match.group(1)


def r2(reference: np.ndarray, other: np.ndarray) -> float:
    return float(1 - ((reference - other) ** 2).sum() / ((reference - reference.mean()) ** 2).sum())


YEAST_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuperus2017_yeast_utr"


def yeast_test_r2(fp32: Predictor, int8: Predictor) -> str:
    """R2 of the fp32 and the int8 model on the yeast-utr test split (the zoo build's split)."""
    from helixserve.training.cli_support import parse_filter  # noqa: PLC0415 - bench only
    from helixserve.training.data import load_sequences, split  # noqa: PLC0415

    path = YEAST_DATA / "Native_UTRs.csv.gz"
    if not path.is_file() or fp32.label.split("@")[0] != "yeast-utr":
        return "yeast-utr test split: not measured (no zoo model or no ../shared/data)"
    schema = fp32.manifest.input
    assert isinstance(schema, SequenceSchema)
    data = load_sequences(
        path,
        schema,
        target_col="growth_rate",
        sequence_col="UTR",
        id_col="UTR_name",
        where=parse_filter("t0>100"),
    )
    test = split(data, task="regression", seed=0).test
    seqs = [data.inputs[i] for i in test]
    truth = np.array([float(data.targets[i]) for i in test])
    scores = []
    for predictor in (fp32, int8):
        values = predictor.predict_batch(seqs).decoded.values
        assert values is not None
        scores.append(r2(truth, np.asarray(values, dtype=float)))
    return (
        f"yeast-utr test split ({len(seqs):,} UTRs): R2 fp32 {scores[0]:.4f}, int8 "
        f"{scores[1]:.4f}, change {scores[1] - scores[0]:+.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="helixserve-bench-batch-") as tmp:
        scratch = Path(tmp)
        store, model = cnn_store(scratch)
        data = scratch / "utrs.csv.gz"
        write_csv(data, args.rows)
        seconds, peak = run_cli(store, model, data, scratch / "out.csv", args.batch, args.workers)
        predictor = Predictor.from_store(store, model, intra_op_threads=args.workers)
        alone = model_only(predictor, args.batch)
        rate = args.rows / seconds
        print(
            f"{model}: end to end {rate:,.0f} rows/s ({args.rows:,} rows, {seconds:.1f} s, "
            f"peak RSS {peak / 1024:.0f} MB); model only {alone:,.0f} rows/s at batch "
            f"{args.batch} with {args.workers} threads; ratio {rate / alone:.2f}"
        )
        int8 = Predictor.from_store(store, quantized(store, model), intra_op_threads=args.workers)
        int8_rate = model_only(int8, args.batch)
        seqs = random_sequences(4096, 50, seed=11)
        fp = predictor.predict_batch(seqs).decoded.values
        q = int8.predict_batch(seqs).decoded.values
        assert fp is not None and q is not None
        print(
            f"int8 {int8.label}: model only {int8_rate:,.0f} rows/s = {int8_rate / alone:.2f}x "
            f"fp32; R2 of int8 against fp32 predictions on 4,096 random UTRs "
            f"{r2(fp, q):.4f}"
        )
        print(yeast_test_r2(predictor, int8))
        small = ModelStore.open(str(ZOO_STORE), cache_dir=scratch / "cache")
        for factor in (1, 10):
            path = scratch / f"mem{factor}.csv.gz"
            write_csv(path, args.memory_rows * factor, seed=factor)
            seconds, peak = run_cli(
                small, "primer-binding", path, scratch / f"m{factor}.csv", 4096, 1
            )
            print(
                f"primer-binding, {args.memory_rows * factor:,} rows: {seconds:.1f} s, "
                f"{args.memory_rows * factor / seconds:,.0f} rows/s, peak RSS "
                f"{peak / 1024:.0f} MB"
            )
            path.unlink()


if __name__ == "__main__":
    main()
