"""Every command in README.md and docs/*.md runs as written, as a new user would run it (issue 14).

How: the ```console blocks (``$ cmd`` + shown output) and ```sh / ```bash blocks of each page are
extracted (:mod:`tests.support.doc_commands`) and run in order with ``bash``, one fresh user per
page: a new empty ``HOME``, no ``HELIXSERVE_*`` (nor ``AWS_*``) variable, no ``.env``, and as the
working folder a temporary copy of the checkout holding the files the docs name (``STAND_INS``).
``helixserve`` is this checkout's (its ``src`` first on ``PYTHONPATH``, the test's virtualenv on
``PATH``); ``make run`` runs the Makefile's recipe as written, with its install step already done
(the stamp file is the test's own virtualenv, so nothing is downloaded).

``make run`` / ``helixserve serve`` / ``helixserve quickstart`` start a server in the background,
as the docs do, on the docs' port 8000 (and gRPC 8001); it must answer ``/readyz`` with 200, and
the ``curl`` lines after it run against it. Outputs are compared by shape
(:func:`~tests.support.doc_commands.shape_problems`): the exit code (0, or 1 when the doc shows an
``Error:``), JSON keys and text values, table columns and rows, lines in order; numbers are
wildcards. Commands whose doc shows no output have their claims checked in ``EXPECT`` (files they
write, lines they print). Commands that are deliberately not run are in ``SKIPPED`` with the
reason; every other command is run, so a new command in the docs is run the day it is written.
``$`` lines in a block of another language (```text: a transcript) are not run; each must be the
same as a command that is run, or be in ``SKIPPED``. A ``helixserve train`` command that a page
before already ran (same command, same stand-in files) is not trained twice (``ONCE``).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.doc_commands import (
    COMMAND_LANGUAGES,
    Command,
    blocks,
    extract,
    shape_problems,
)
from tests.support.onnx_models import gc_binary_model

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PORTS = (8000, 8001)  # the docs' HTTP and gRPC ports: their curl lines and `make run` use them
SERVERS = ("make run", "helixserve serve", "helixserve quickstart")
ONCE = ("helixserve train ",)  # the same command on a later page: same files, same result
MOTIF = "CGACCGAACTCC"  # the primer-binding motif (docs/explain.md)
COMMAND_TIMEOUT_S = 180

SKIPPED = {
    "make test": "runs ruff, mypy and the whole suite, this file included: CI runs it",
    "docker ": "needs a Docker engine: make image builds and runs the images (tests/image)",
    "make image": "builds and runs the container images as root with a private Docker engine: "
    ".ci/run runs it",
    "kubectl ": "needs a Kubernetes cluster; tests/test_deploy.py and make manifests check the "
    "manifests",
    "pip install 'helixserve[ray]'": "installs from a package index; the test's venv has it",
    "helixserve serve --engine ray": "needs a Ray cluster and an S3 store (tests/test_ray.py)",
    "helixserve predict primer-binding s3://": "needs S3 and a Ray cluster (tests/test_ray.py)",
    "helixserve models push my-binder --to s3://": "needs an S3 bucket (tests/test_store.py)",
    "helixserve models pull my-binder --from s3://": "needs an S3 bucket (tests/test_store.py)",
    "helixserve train image": "long training: 16 images of 128 px take about 150 s on 2 cores",
    "helixserve train dna-binary --data sequences.txt --labels labels.txt --name primer-binding "
    "--resume": "needs a run killed mid-training: tests/test_training_resume.py kills and resumes",
    "helixserve users add ana --admin": "asks for the password twice without echo; "
    "tests/test_accounts.py runs `users add` with --password-stdin",
    "helixserve runs wait cuperus:1": "follows a run a worker trains (minutes on the full table): "
    "tests/test_workspace_cli.py runs `runs wait` with `helixserve worker` on it",
}

STAND_INS = {
    "primers.fasta.gz": "src/helixserve/examples/primers.fasta, gzipped (10 records, 4 bad)",
    "library.fasta.gz": "a library: 2,000 generated 50-nt records, half with the motif, then "
    "the 10 example primers (so some records are refused)",
    "sequences.txt": "the primer tutorial's layout: 200 generated 50-nt sequences, one a line",
    "labels.txt": "their labels, one a line (1: the sequence carries the motif)",
    "sequences.fasta": "the same 200 sequences as FASTA",
    "utrs.parquet": "100 generated 50-nt yeast 5' UTRs in a `sequence` column",
    "native_utrs.csv": "the same 100 UTRs as CSV, in a `utr` column",
    "primer_test.csv": "a labelled test file: the 200 sequences in a `sequence` column, `label`",
    "Native_UTRs.csv.gz": "the Cuperus et al. table's columns (UTR, growth_rate, t0): 120 "
    "generated UTRs",
    "tumours.csv": "150 generated tumour rows: id, nine cytology scores 1..10, class 2 or 4",
    "rows.csv": "the same rows without the id column",
    "notes.md": "a short Markdown file of the user's own notes for the model card",
    "breast-cancer-wisconsin.data": "the same rows in the UCI file's layout (no header)",
    "model.onnx": "a 50-nt binary classifier (tests/support/onnx_models.gc_binary_model)",
    "schema.yaml": "the schema file shown in docs/store.md, as written",
    "card.md": "a one-line model card (schema.yaml names it)",
    "promoters.csv": "300 simulated 120-nt sequences, `class` up/down/other (where a motif sits)",
    "regions.csv": "300 simulated 120-nt sequences, four 0/1 label columns (a motif each)",
}

PREDICTIONS = "index,id,label,probability,p_0,p_1"
REFUSED = "index,id,line,field,position,message"


@dataclass(frozen=True)
class Expect:
    """What a command must print (lines, in order, like shown output) and write (file: header)."""

    lines: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)


EXPECT = {
    "make run": Expect(("... primer-binding ...",)),  # its `models list` of the zoo
    "curl -s localhost:8000/api/v1/models/primer-binding/predict-file": Expect(
        ("index,id,line,label,probability,p_0,p_1,error", "1,bind_1,1,1,...")
    ),
    "helixserve predict primer-binding library.fasta.gz -o scores.csv": Expect(
        (
            "scored 2,006 records, refused 4 in 0.4 s (5,015 records/s) -> scores.csv; refused "
            "rows -> scores.errors.csv",
        ),
        {"scores.csv": PREDICTIONS, "scores.errors.csv": REFUSED},
    ),
    "helixserve predict yeast-utr utrs.parquet -o scores.parquet": Expect(
        files={"scores.parquet": "index,id,value", "scores.errors.csv": REFUSED}
    ),
    "helixserve train ": Expect(("trained and published in 1 s; ONNX parity ...",)),
    "helixserve models list": Expect(("... my-binder ...",)),
    "helixserve models show my-binder@production": Expect(("my-binder@1", "task binary")),
    "helixserve models pull my-binder@2": Expect(("my-binder@2 verified in ...",)),
    "helixserve explain motifs primer-binding sequences.fasta --filters 3": Expect(
        ("motifs from 200 sequences (0 refused)", f"ism {MOTIF} ...", "filter ...")
    ),
    "helixserve bench yeast-utr@3 --batch 64": Expect(("yeast-utr@3, 1 ONNX Runtime ...",)),
}


def doc_commands() -> list[Command]:
    return [c for path in DOCS for c in extract(path, path.relative_to(ROOT).as_posix())]


COMMANDS = doc_commands()


def skip_reason(command: Command) -> str | None:
    return next((r for p, r in SKIPPED.items() if command.first_line.startswith(p)), None)


def runnable(command: Command) -> bool:
    return command.language in COMMAND_LANGUAGES and skip_reason(command) is None


def expected(command: Command) -> list[Expect]:
    shown = [line for line in command.shown if line.strip()]
    if shown and shown[0].startswith("Error:"):  # a refusal: its message is all it prints
        return []
    return [e for p, e in EXPECT.items() if command.first_line.startswith(p)]


# --- the stand-in files -------------------------------------------------------------------------


def _dna(rng: random.Random, motif: bool) -> str:
    seq = "".join(rng.choice("ACGT") for _ in range(50))
    if not motif:
        return seq
    at = rng.randrange(50 - len(MOTIF))
    return seq[:at] + MOTIF + seq[at + len(MOTIF) :]


def _simulated(work: Path) -> None:
    """``promoters.csv`` and ``regions.csv`` from the training layer's simulated tasks."""
    from helixserve.training.simulate import multilabel_motifs, positional_multiclass

    classes = positional_multiclass(300, 14)
    rows = (f"{s},{t}" for s, t in zip(classes.sequences, classes.targets, strict=True))
    (work / "promoters.csv").write_text("sequence,class\n" + "\n".join(rows) + "\n")
    labels = multilabel_motifs(300, 14, length=120, window=40)
    lines = [
        f"{s},{','.join(map(str, t))}"
        for s, t in zip(labels.sequences, labels.targets, strict=True)
    ]
    header = "sequence,enhancer,promoter,insulator,silencer\n"
    (work / "regions.csv").write_text(header + "\n".join(lines) + "\n")


def _tumour_rows(rng: random.Random) -> list[str]:
    rows = []
    for i in range(150):
        malignant = i % 3 == 0
        scores = [rng.randint(5, 10) if malignant else rng.randint(1, 4) for _ in range(9)]
        rows.append(f"{1000 + i}," + ",".join(map(str, scores)) + f",{4 if malignant else 2}")
    return rows


def prepare(work: Path) -> None:
    """The folder a user follows the docs in: the checkout's files and ``STAND_INS``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    work.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "requirements"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, work / name)
    (work / "src").symlink_to(ROOT / "src")
    (work / ".venv").mkdir()
    (work / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    (work / ".venv" / ".base-installed").touch()
    (work / ".venv" / ".run-installed").touch()
    rng = random.Random(14)
    examples = (ROOT / "src" / "helixserve" / "examples" / "primers.fasta").read_text()
    (work / "primers.fasta.gz").write_bytes(gzip.compress(examples.encode()))
    library = "".join(f">seq{i}\n{_dna(rng, i % 2 == 0)}\n" for i in range(2000))
    (work / "library.fasta.gz").write_bytes(gzip.compress((library + examples).encode()))
    sequences = [_dna(rng, i % 2 == 0) for i in range(200)]
    (work / "sequences.txt").write_text("\n".join(sequences) + "\n")
    rows = (f"{s},{1 - i % 2}" for i, s in enumerate(sequences))
    (work / "primer_test.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    (work / "labels.txt").write_text("".join(f"{1 - i % 2}\n" for i in range(200)))
    (work / "sequences.fasta").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(sequences)))
    utrs = [_dna(rng, False) for _ in range(100)]
    pq.write_table(pa.table({"sequence": utrs}), work / "utrs.parquet")
    (work / "native_utrs.csv").write_text("utr\n" + "\n".join(utrs) + "\n")
    table = [
        f"{u},{u.count('G') / 10 - u.count('ATG'):.3f},{rng.randint(50, 500)}"
        for u in (_dna(rng, False) for _ in range(120))
    ]
    csv = "UTR,growth_rate,t0\n" + "\n".join(table) + "\n"
    (work / "Native_UTRs.csv.gz").write_bytes(gzip.compress(csv.encode()))
    tumours = _tumour_rows(rng)
    header = "id,clump_thickness,uniformity_cell_size,uniformity_cell_shape,marginal_adhesion,"
    header += "single_epithelial_cell_size,bare_nuclei,bland_chromatin,normal_nucleoli,mitoses"
    (work / "tumours.csv").write_text(f"{header},class\n" + "\n".join(tumours) + "\n")
    (work / "breast-cancer-wisconsin.data").write_text("\n".join(tumours) + "\n")
    no_id = [row.split(",", 1)[1] for row in [header, *tumours]]
    (work / "rows.csv").write_text(f"{no_id[0]},class\n" + "\n".join(no_id[1:]) + "\n")
    (work / "notes.md").write_text("## Notes\n\nScores from one clinic's 2024 slides.\n")
    (work / "model.onnx").write_bytes(gc_binary_model(50))
    schema = next(b for b in blocks(ROOT / "docs" / "store.md") if b.language == "yaml")
    (work / "schema.yaml").write_text("\n".join(schema.lines) + "\n")
    (work / "card.md").write_text("# my-binder\n\nBinds when the sequence is rich in G and C.\n")
    _simulated(work)
    assert sorted(STAND_INS) == sorted(p.name for p in work.iterdir() if p.name in STAND_INS)


# --- running ------------------------------------------------------------------------------------


@dataclass
class Result:
    rc: int
    output: str


def fresh_env(home: Path) -> dict[str, str]:
    """A new user's environment: nothing of helixserve's, AWS's, XDG's or an outer make's."""
    drop = ("HELIXSERVE_", "AWS_", "XDG_", "MAKE", "MFLAGS", "PROMETHEUS_", "COLUMNS", "LINES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT / "src"),
        COLUMNS="200",
        NO_COLOR="1",
    )
    return env


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Server:
    """A server command of the docs, running in the background in its own process group."""

    def __init__(self, command: Command, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", command.text],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self, timeout: float = 90) -> Result:
        """200 from /readyz, or why not (the first answer is final: models load before it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{PORTS[0]}/readyz", timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            tail = self.log.read_text(errors="replace")[-3000:]
            return Result(
                0 if answer.status_code == 200 else 1,
                f"/readyz {answer.status_code} {answer.text}\n{tail}",
            )
        tail = self.log.read_text(errors="replace")[-3000:]
        return Result(1, f"no answer from /readyz (exit status {self.process.poll()})\n{tail}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Runs:
    """Runs each page's commands once, in order, in that page's fresh folder and HOME."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.results: dict[Command, Result] = {}
        self.server: Server | None = None
        self.server_doc = ""

    def home(self, doc: str) -> Path:
        """Short, like a real one, so that rich does not wrap the titles that show it."""
        page = [path.relative_to(ROOT).as_posix() for path in DOCS].index(doc)
        return self.tmp / str(page) / "home"

    def result(self, command: Command) -> Result:
        page = [c for c in COMMANDS if c.doc == command.doc and runnable(c)]
        for earlier in page[: page.index(command) + 1]:
            if earlier not in self.results:
                self.results[earlier] = self._run(earlier)
        return self.results[command]

    def _run(self, command: Command) -> Result:
        home = self.home(command.doc)
        work = home.parent / "work"
        if not work.exists():
            home.mkdir(parents=True)
            prepare(work)
        env = fresh_env(home)
        twin = next((c for c in self.results if c.text == command.text), None)
        if twin is not None and command.first_line.startswith(ONCE):
            return self.results[twin]
        if self.server_doc != command.doc or command.first_line.startswith(SERVERS):
            self.stop()
        if command.first_line.startswith(SERVERS):
            self.server_doc = command.doc
            if taken := [p for p in PORTS if _port_taken(p)]:
                return Result(1, f"port {taken} is in use by another program; the docs use it")
            self.server = Server(command, work, env, home.parent / f"server-{command.line}.log")
            return self.server.ready()
        with subprocess.Popen(
            ["bash", "-c", command.text],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ) as process:
            try:
                output, _ = process.communicate(timeout=COMMAND_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                output += f"\n(stopped after {COMMAND_TIMEOUT_S} s)".encode()
        return Result(process.returncode, output.decode("utf-8", errors="replace"))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    runner = Runs(Path(tempfile.mkdtemp(prefix="hs")))
    yield runner
    runner.stop()
    shutil.rmtree(runner.tmp, ignore_errors=True)


def file_header(path: Path) -> str:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return ",".join(pq.read_schema(path).names)
    with path.open(encoding="utf-8") as lines:
        return lines.readline().rstrip("\n")


def expect_problems(command: Command, result: Result, work: Path) -> list[str]:
    problems: list[str] = []
    for expect in expected(command):
        problems += shape_problems(list(expect.lines), result.output, "")
        for name, header in expect.files.items():
            if not (work / name).is_file():
                problems.append(f"{name} was not written")
            elif file_header(work / name) != header:
                problems.append(f"{name} starts {file_header(work / name)!r}, not {header!r}")
    return problems


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command_runs_as_written(command: Command, runs: Runs) -> None:
    if reason := skip_reason(command):
        pytest.skip(f"not run: {reason}")
    if command.language not in COMMAND_LANGUAGES:
        twin = next((c for c in COMMANDS if c.text == command.text and runnable(c)), None)
        if twin is not None:
            pytest.skip(f"a transcript in a ```{command.language} block; {twin.id} runs it")
        pytest.fail(
            f"{command.text}\nis in a ```{command.language or '(no language)'} block, "
            "so nothing runs it: make the block ```console, or add the command to "
            "SKIPPED with the reason"
        )
    result = runs.result(command)
    shown = [line for line in command.shown if line.strip()]
    status = 1 if shown and shown[0].startswith("Error:") else 0
    home = runs.home(command.doc)
    assert result.rc == status, f"{command.text}\nexit status {result.rc}:\n{result.output}"
    problems = shape_problems(shown, result.output, str(home))
    problems += expect_problems(command, result, home.parent / "work")
    assert not problems, f"{command.text}\n" + "\n".join(problems)


def test_every_skipped_command_is_in_the_docs() -> None:
    """A stale entry would hide the next command that happens to start the same way."""
    unused = [p for p in SKIPPED if not any(c.first_line.startswith(p) for c in COMMANDS)]
    assert not unused
    unused = [p for p in EXPECT if not any(c.first_line.startswith(p) for c in COMMANDS)]
    assert not unused


def test_the_docs_commands_are_found() -> None:
    """The extraction finds the pages with commands (a broken parser would find none)."""
    pages = {c.doc for c in COMMANDS if runnable(c)}
    assert pages >= {
        "README.md",
        "docs/batch.md",
        "docs/explain.md",
        "docs/serving.md",
        "docs/store.md",
        "docs/training.md",
    }
    assert len([c for c in COMMANDS if runnable(c)]) >= 30


def test_the_shape_check_sees_a_changed_output() -> None:
    """The comparison is by shape, but a changed header, key, word or table row fails it."""
    shown = [
        "scored 998,412 records, refused 1,588 in 212.4 s -> scores.csv",
        "┏━━━━━━━━┳━━━━━━━━━━━━━┓",
        "┃ record ┃ problem     ┃",
        "┡━━━━━━━━╇━━━━━━━━━━━━━┩",
        "│ 6      │ position 31 │",
        "│        │ is 'F'.     │",
        "...",
    ]
    table = ["┏━━━┳━━━┓", "┃ record ┃ problem ┃", "│ 7 │ position 2 is 'F'. │", "└─┘"]
    good = "progress: 1 scored\nscored 2 records, refused 0 in 0.1 s -> scores.csv\n"
    assert shape_problems(shown, good + "\n".join(table), "/h") == []
    assert shape_problems(shown, good.replace("refused", "failed") + "\n".join(table), "/h")
    assert shape_problems(shown, good + "\n".join(table).replace("problem", "error"), "/h")
    assert shape_problems(shown, good + "\n".join(table).replace("'F'", "'X'"), "/h")
    json_shown = ['{"model":"m","predictions":[{"label":"1",...},null],', ' "errors":[]}']
    assert (
        shape_problems(json_shown, '{"model":"m","predictions":[{"label":"1"}],"errors":[]}', "")
        == []
    )
    assert shape_problems(json_shown, '{"model":"m","predictions":[{"label":"1"}]}', "")
    assert shape_problems(json_shown, '{"model":"x","predictions":[{"label":"1"}],"errors":[]}', "")
    assert shape_problems(["file:///home/me/.s"], "file:///h/.s", "/h") == []
    assert shape_problems(["key:   hs_1Yb..."], "key:   hs_ZZZ", "") == []
