"""Benchmark: VCF scoring throughput (variants/s) and peak memory, ``helixserve variants``.

Run with ``python -m benchmarks.bench_vcf``. It makes a synthetic genome (``--contigs`` contigs
of ``--contig-nt`` random bases, bgzip-compressed as a genome would be) and VCFs of ``--sizes``
records on it: 85 % SNVs, 7 % deletions and 5 % insertions of 1-6 nt, 3 % multi-allelic
(two ALTs); then, to be reported one by one, 0.5 % each with a REF that is not the reference's,
a symbolic ``<DEL>`` ALT, and a contig the genome does not have. Each run is ``helixserve
variants`` in its own process, as a user runs it (one ONNX Runtime thread, ``--batch-size 512``,
a TSV table out): wall time, records and alleles per second, and the process's peak resident
memory (``ru_maxrss`` of the finished child, from ``os.wait4``). The sizes differ by 10x, so
constant memory shows as the same peak. Models: ``primer-binding`` (a 50-nt CNN) on every size,
``yeast-utr`` (the Cuperus CNN, 17.7 M multiply-adds per sequence) on the smallest, and the real
S. aureus VCF of ``src/helixserve/examples`` scored by ``amr-resistance`` (whole genes).
Then the explanations of long sequences on the web page: ``helixserve serve`` as a new user starts
it (``benchmarks.bench_explain.serve``), and the predict form posted ``--repeat`` times (after one
warm-up) for a 50-nt primer (full ISM), real S. aureus genes (pbp4, 1,296 nt: full ISM; rpoB,
3,552 nt: automatic, i.e. block occlusion, and ISM of a 500-nt region): the median page time
(request to the whole HTML), and the sequences scored and seconds the page itself states.
Writes ``benchmarks/results-vcf-<date>.txt``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.bench_explain import serve, stop
from helixserve.inputs.reference import bgzip

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "helixserve" / "examples"
BASES = "ACGT"
STATED = re.compile(r"Explanation: ([\d,]+) sequences of [\d,]+ nt scored in ([\d.]+) s")


@dataclass
class Run:
    label: str
    records: int
    alleles_scored: int
    alleles_refused: int
    seconds: float
    peak_mib: float

    def line(self) -> str:
        return (
            f"{self.label:<44} {self.records:>9,} records  {self.seconds:7.1f} s  "
            f"{self.records / self.seconds:8,.0f} records/s  "
            f"{self.alleles_scored / self.seconds:8,.0f} alleles scored/s  "
            f"({self.alleles_scored:,} scored, {self.alleles_refused:,} refused)  "
            f"peak RSS {self.peak_mib:,.0f} MiB"
        )


def genome(folder: Path, contigs: int, length: int, rng: random.Random) -> tuple[Path, list[str]]:
    """A bgzip FASTA of random contigs (60 nt a line), and their bases."""
    plain = folder / "genome.fa"
    sequences = []
    with plain.open("w") as out:
        for k in range(contigs):
            bases = "".join(rng.choices(BASES, k=length))
            sequences.append(bases)
            out.write(f">chr{k + 1}\n")
            out.writelines(bases[i : i + 60] + "\n" for i in range(0, length, 60))
    packed = folder / "genome.fa.gz"
    bgzip(plain, packed)
    plain.unlink()
    return packed, sequences


def _record(rng: random.Random, sequences: list[str]) -> tuple[str, int, str, str]:
    k = rng.randrange(len(sequences))
    chrom, bases = f"chr{k + 1}", sequences[k]
    pos = rng.randrange(100, len(bases) - 100)
    roll = rng.random()
    ref = bases[pos - 1]
    other = rng.choice([b for b in BASES if b != ref])
    if roll < 0.85:
        return chrom, pos, ref, other
    if roll < 0.92:
        size = rng.randint(1, 6)
        return chrom, pos, bases[pos - 1 : pos + size], ref
    if roll < 0.97:
        return chrom, pos, ref, ref + "".join(rng.choices(BASES, k=rng.randint(1, 6)))
    third = rng.choice([b for b in BASES if b not in (ref, other)])
    return chrom, pos, ref, f"{other},{third}"


def vcf(path: Path, size: int, sequences: list[str], rng: random.Random) -> None:
    """``size`` records sorted by contig and position (see the module contract)."""
    rows = [_record(rng, sequences) for _ in range(size)]
    bad = max(1, size // 200)
    for i in rng.sample(range(size), 3 * bad):
        chrom, pos, ref, alt = rows[i]
        kind = i % 3
        if kind == 0:
            rows[i] = (chrom, pos, "T" if ref[0] != "T" else "G", alt)
        elif kind == 1:
            rows[i] = (chrom, pos, ref, "<DEL>")
        else:
            rows[i] = ("chrUn", pos, ref, alt)
    rows.sort(key=lambda r: (r[0], r[1]))
    with gzip.open(path, "wt") as out:
        out.write("##fileformat=VCFv4.2\n")
        for k, bases in enumerate(sequences):
            out.write(f"##contig=<ID=chr{k + 1},length={len(bases)}>\n")
        out.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for n, (chrom, pos, ref, alt) in enumerate(rows, start=1):
            out.write(f"{chrom}\t{pos}\tv{n}\t{ref}\t{alt}\t50\tPASS\tDP=30\n")


def score(label: str, model: str, calls: Path, reference: Path, work: Path) -> Run:
    """Run ``helixserve variants`` in its own process; its wall time and peak memory."""
    out = work / f"{label.replace(' ', '_')}.tsv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HELIXSERVE_")},
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    command = [sys.executable, "-m", "helixserve", "variants", model, str(calls)]
    command += ["--reference", str(reference), "-o", str(out), "--batch-size", "512"]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    err = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label}: helixserve variants failed:\n{err}")
    records = sum(1 for line in _lines(calls) if not line.startswith("#"))
    scored = sum(1 for _ in out.open()) - 1
    refused = sum(1 for _ in (work / f"{out.stem}.errors.tsv").open()) - 1
    return Run(label, records, scored, refused, seconds, usage.ru_maxrss / 1024)


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as text:
        return text.readlines()


def _genes() -> dict[str, str]:
    text = (EXAMPLES / "saureus_genes.fa").read_text()
    chunks = [c.split("\n", 1) for c in text.split(">") if c]
    return {name: bases.replace("\n", "") for name, bases in chunks}


def page_times(repeat: int) -> list[str]:
    """The predict page's explanation of short and long sequences (see the module contract)."""
    genes = _genes()
    primer = "ACGTACCGACCGAACTCCTTGACGTAGCATGCATCGATCGGATCCATGCA"
    cases = [
        ("primer-binding, 50-nt primer, automatic", "primer-binding", primer, {}),
        ("amr-resistance, pbp4 1,296 nt, automatic", "amr-resistance", genes["pbp4"], {}),
        ("amr-resistance, rpoB 3,552 nt, automatic", "amr-resistance", genes["rpoB"], {}),
        (
            "amr-resistance, rpoB 3,552 nt, region 1-500",
            "amr-resistance",
            genes["rpoB"],
            {"region": "1-500"},
        ),
    ]
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        process, base = serve(Path(tmp))
        try:
            with httpx.Client(base_url=base, timeout=300) as client:
                for label, model, sequence, extra in cases:
                    lines.append(_page_case(client, label, model, sequence, extra, repeat))
                    print(lines[-1], flush=True)
        finally:
            stop(process)
    return lines


def _page_case(
    client: httpx.Client,
    label: str,
    model: str,
    sequence: str,
    extra: dict[str, str],
    repeat: int,
) -> str:
    form = client.get(f"/models/{model}/predict").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    data = {"csrf_token": token.group(1), "sequence": sequence, **extra}
    walls, stated = [], []
    cost = ""
    for n in range(repeat + 1):
        started = time.perf_counter()
        page = client.post(f"/models/{model}/predict", data=data).text
        wall = time.perf_counter() - started
        found = re.search(
            r"Explanation: ([\d,]+) sequences of [\d,]+ nt scored in ([\d.]+) s", page
        )
        if found is None:
            raise SystemExit(f"{label}: the page states no explanation cost")
        if n:  # the first is the warm-up
            walls.append(wall)
            stated.append(float(found.group(2)))
        cost = found.group(1)
    return (
        f"{label:<46} {cost:>6} sequences scored  page {statistics.median(walls):6.2f} s "
        f"(median of {repeat})  stated {statistics.median(stated):6.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="VCF records, comma-separated")
    parser.add_argument("--contigs", type=int, default=3)
    parser.add_argument("--contig-nt", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=5, help="page posts per case")
    parser.add_argument("--out", default=None, help="results file (default: dated, benchmarks/)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(args.seed)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-vcf-") as tmp:
        work = Path(tmp)
        reference, sequences = genome(work, args.contigs, args.contig_nt, rng)
        for size in sizes:
            calls = work / f"calls-{size}.vcf.gz"
            vcf(calls, size, sequences, rng)
            runs.append(
                score(f"primer-binding, {size:,} records", "primer-binding", calls, reference, work)
            )
            print(runs[-1].line(), flush=True)
        small = work / f"calls-{sizes[0]}.vcf.gz"
        runs.append(score(f"yeast-utr, {sizes[0]:,} records", "yeast-utr", small, reference, work))
        print(runs[-1].line(), flush=True)
        real = EXAMPLES / "saureus_variants.vcf"
        runs.append(
            score(
                "amr-resistance, S. aureus genes (real)",
                "amr-resistance",
                real,
                EXAMPLES / "saureus_genes.fa",
                work,
            )
        )
        print(runs[-1].line(), flush=True)
    pages = page_times(args.repeat)
    when = datetime.date.today().isoformat()
    target = Path(args.out) if args.out else ROOT / "benchmarks" / f"results-vcf-{when}.txt"
    head = (
        f"bench_vcf {when}: {os.cpu_count()} CPUs seen, genome {args.contigs} x "
        f"{args.contig_nt:,} nt (bgzip), seed {args.seed}; helixserve variants, one ONNX Runtime "
        "thread, --batch-size 512, TSV out"
    )
    body = [head, *(r.line() for r in runs), "", "predict page, long sequences:", *pages]
    target.write_text("\n".join(body) + "\n")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
