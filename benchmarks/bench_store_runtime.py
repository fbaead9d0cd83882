"""Benchmark: bundle pull + load from a real S3 server, and Predictor overhead vs bare ONNX Runtime.

Run with ``make bench`` (or ``python -m benchmarks.bench_store_runtime``). It builds two CNNs
in PyTorch with random weights (timing does not depend on the weights) and exports them to ONNX:

- ``primer-cnn``: the 50-nt binary classifier shape of the primer tutorial (conv 32 x 12, max-pool
  4, dense 16, sigmoid) — the model the overhead goal is stated for;
- ``cuperus-cnn``: the yeast UTR regressor of Cuperus et al. 2017 (three conv layers of 128
  filters, width 13, dense 64, linear output) on 70 one-hot positions, a ~3 MB bundle.

It reports, medians of repeated runs in one process (the machine is shared and noisy):
- pull (S3 -> verified local cache) and load (verify + ONNX Runtime session) of the 3 MB bundle;
- at batch 1024: the bare ``session.run`` on a ready tensor, Predictor validate+encode, decode,
  and the whole ``predict``; overhead = (encode + decode) / bare model call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tests.support.s3server import READ_WRITE, seaweedfs

from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import Predictor
from helixserve.store import ModelStore, OutputSchema, S3Options, make_manifest


class PrimerCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 32, 12)
        self.pool = torch.nn.MaxPool1d(4)
        self.fc1 = torch.nn.Linear(32 * 9, 16)
        self.fc2 = torch.nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(h)))).squeeze(1)


class CuperusCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.Sequential(
            torch.nn.Conv1d(4, 128, 13),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.15),
            torch.nn.Conv1d(128, 128, 13),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.15),
            torch.nn.Conv1d(128, 128, 13),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.15),
        )
        self.dense = torch.nn.Linear(128 * 34, 64)
        self.out = torch.nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(torch.relu(self.dense(self.convs(x).flatten(1))))
        return out


def export(model: torch.nn.Module, length: int, output: str) -> bytes:
    torch.manual_seed(0)
    program = torch.onnx.export(
        model.eval(),
        (torch.zeros(2, 4, length),),
        dynamo=True,
        input_names=["input"],
        output_names=[output],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        opset_version=18,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    data: bytes = program.model_proto.SerializeToString()
    return data


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_sequences(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    codes = letters[rng.integers(0, 4, size=(n, length))]
    return [row.tobytes().decode("ascii") for row in codes]


def overhead(predictor: Predictor, batch: int, repeat: int) -> dict[str, float]:
    schema = predictor.manifest.input
    if not isinstance(schema, SequenceSchema) or schema.length is None:
        raise ValueError("the overhead benchmark needs a fixed-length DNA model")
    seqs = random_sequences(batch, schema.length)
    tensor = predictor._fast_path(seqs)
    if tensor is None:
        raise ValueError("clean sequences must take the vectorised path")
    output = predictor.run(tensor)
    bare = median_seconds(lambda: predictor.run(tensor), repeat)
    encode = median_seconds(lambda: predictor._fast_path(seqs), repeat)
    decode = median_seconds(lambda: predictor.decode(output), repeat)
    batch_whole = median_seconds(lambda: predictor.predict_batch(seqs), repeat)
    objects = median_seconds(lambda: predictor.predict(seqs), repeat)
    one_bad = [*seqs[:-1], seqs[-1][:-1] + "F"]  # forces item-by-item validation
    slow = median_seconds(lambda: predictor.predict_batch(one_bad), max(3, repeat // 3))
    return {
        "batch": batch,
        "bare_model_ms": bare * 1e3,
        "validate_encode_ms": encode * 1e3,
        "decode_ms": decode * 1e3,
        "predict_batch_ms": batch_whole * 1e3,
        "overhead_encode_decode": (encode + decode) / bare,
        "overhead_predict_batch_vs_bare": (batch_whole - bare) / bare,
        "per_item_overhead_us": (encode + decode) / batch * 1e6,
        "predict_per_item_objects_ms": objects * 1e3,
        "predict_batch_with_one_bad_item_ms": slow * 1e3,
    }


def publish(
    store: ModelStore,
    name: str,
    model: bytes,
    schema: SequenceSchema,
    task: str,
    output: OutputSchema,
) -> None:
    files = {"model.onnx": model, "card.md": f"# {name}\n\nbenchmark model\n".encode()}
    store.publish(make_manifest(files, name=name, task=task, input=schema, output=output), files)


def pull_and_load(store: ModelStore, ref: str, scratch: Path, repeat: int) -> dict[str, float]:
    pulls, loads = [], []
    for _ in range(repeat):
        store.cache_dir = scratch / uuid.uuid4().hex  # cold cache every time
        start = time.perf_counter()
        bundle = store.pull(ref)
        middle = time.perf_counter()
        Predictor(bundle)
        pulls.append(middle - start)
        loads.append(time.perf_counter() - middle)
    size = sum((bundle.path / f).stat().st_size for f in bundle.manifest.files)
    return {
        "bundle_bytes": size,
        "pull_ms": statistics.median(pulls) * 1e3,
        "load_ms": statistics.median(loads) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    primer = export(PrimerCNN(), 50, "p")
    cuperus = export(CuperusCNN(), 70, "value")
    with tempfile.TemporaryDirectory() as tmp, seaweedfs(Path(tmp) / "s3") as server:
        options = S3Options(
            endpoint_url=server.endpoint,
            region="us-east-1",
            key=READ_WRITE[0],
            secret=READ_WRITE[1],
        )
        store = ModelStore.open("s3://bench/store", s3=options, cache_dir=Path(tmp) / "cache")
        store.location.fs.mkdir("bench")
        yeast = SequenceSchema(length=50, flank_left="A" * 10, flank_right="A" * 10)
        publish(
            store,
            "primer-cnn",
            primer,
            SequenceSchema(length=50),
            "binary",
            OutputSchema(labels=["0", "1"]),
        )
        publish(store, "cuperus-cnn", cuperus, yeast, "regression", OutputSchema(units="growth"))
        results = {
            "pull_load_cuperus_s3": pull_and_load(store, "cuperus-cnn", Path(tmp), 5),
            "primer_cnn_batch_1024": overhead(
                store_predictor(store, "primer-cnn"), 1024, args.repeat
            ),
            "cuperus_cnn_batch_1024": overhead(
                store_predictor(store, "cuperus-cnn"), 1024, max(5, args.repeat // 6)
            ),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def store_predictor(store: ModelStore, name: str) -> Predictor:
    return Predictor(store.pull(name), intra_op_threads=1)


if __name__ == "__main__":
    main()
