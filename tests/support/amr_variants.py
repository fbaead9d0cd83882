"""A small real VCF and its reference, made from the amr-resistance data's own variation.

Contract: :func:`build` reads ``amr_gene_resistance_hzi/genes_long.csv.gz`` (the S. aureus
cefoxitin isolates, train and test), takes for each gene of :data:`GENES` its most common allele
as the reference (ties: the first in the file), aligns every other allele of that gene to it
(on the reference's strand, :func:`oriented`; Biopython's global ``PairwiseAligner``; end gaps,
i.e. shorter hits, are not variants) and lists
each difference once: SNVs, and insertions and deletions left-aligned with their anchor base (VCF
4.2). ``AC`` is how many isolates carry the variant, ``AN`` how many carry the gene. Each record's
ID is ``GENE:POS:REF:ALT``. :func:`write` writes ``saureus_genes.fa`` and ``saureus_variants.vcf``
(records by gene in :data:`GENES` order, then position). ``python -m tests.support.amr_variants
DATA_FOLDER OUT_FOLDER`` rebuilds the copies shipped in ``src/helixserve/examples``;
:func:`with_mismatch` is the shipped VCF with one REF that the reference contradicts, and
:data:`MISMATCH` what every edge says about it.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections import Counter, defaultdict
from pathlib import Path

from Bio.Align import PairwiseAligner

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "helixserve" / "examples"
VCF = EXAMPLES / "saureus_variants.vcf"
FASTA = EXAMPLES / "saureus_genes.fa"
GOOD = "dfrB\t62\tdfrB:62:A:G\tA\tG\t"
MISMATCH = (
    "record 1 (id dfrB:62), line 13: the reference has 'A' at dfrB:62, not 'C' as REF says; "
    "check that the VCF was called against this reference (the same build)."
)
SCORED, WINDOW = 356, 53  # of the 410 records: one mismatch, 53 past the 2,048 nt amr reads
GENES = ("dfrB", "pbp4-promoter", "pbp4", "mecA", "gyrA", "rpoB")
DATASET = "Staphylococcus_aureus_cefoxitin"
Variant = tuple[int, str, str]


def with_mismatch() -> str:
    """The shipped VCF with its first record's REF changed from A to C (the reference holds A)."""
    text = VCF.read_text()
    return text.replace(GOOD, "dfrB\t62\tdfrB:62:A:G\tC\tG\t")


def alleles(data: Path) -> dict[str, Counter[str]]:
    """Per gene of :data:`GENES`: each allele and how many isolates carry it."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    with gzip.open(data / "amr_gene_resistance_hzi" / "genes_long.csv.gz", "rt") as text:
        for row in csv.DictReader(text):
            if row["dataset"] == DATASET and row["gene"] in GENES:
                found[row["gene"]][row["sequence"].upper()] += 1
    return found


def _aligner() -> PairwiseAligner:
    aligner = PairwiseAligner(mode="global")
    aligner.match_score, aligner.mismatch_score = 2, -3
    aligner.open_gap_score, aligner.extend_gap_score = -12, -2
    aligner.end_gap_score = 0
    return aligner


def normalise(reference: str, pos: int, ref: str, alt: str) -> Variant:
    """Left-align and trim a variant (Tan et al. 2015), keeping one anchor base for indels."""
    changed = True
    while changed:
        changed = False
        if ref and alt and ref[-1] == alt[-1]:
            ref, alt, changed = ref[:-1], alt[:-1], True
        if (not ref or not alt) and pos > 1:
            pos -= 1
            base = reference[pos - 1]
            ref, alt, changed = base + ref, base + alt, True
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def _revcomp(bases: str) -> str:
    return bases.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def oriented(reference: str, other: str, k: int = 12) -> str:
    """``other`` on the reference's strand: itself or its reverse complement, whichever shares
    more ``k``-mers with the reference (ResFinder reports hits on either strand)."""
    kmers = {reference[i : i + k] for i in range(len(reference) - k + 1)}
    flipped = _revcomp(other)

    def shared(bases: str) -> int:
        return sum(bases[i : i + k] in kmers for i in range(len(bases) - k + 1))

    return flipped if shared(flipped) > shared(other) else other


def differences(reference: str, other: str, aligner: PairwiseAligner) -> list[Variant]:
    """Each difference of ``other`` from ``reference`` as (1-based POS, REF, ALT), inside the
    part both cover (an end gap is a shorter hit, not a variant)."""
    top, bottom = aligner.align(reference, other)[0]
    covered = [i for i in range(len(top)) if top[i] != "-" and bottom[i] != "-"]
    first, last = covered[0], covered[-1]
    found: list[Variant] = []
    at = sum(c != "-" for c in top[:first])  # reference bases before the shared part
    i = first
    while i <= last:
        if top[i] != "-" and bottom[i] != "-":
            if top[i] != bottom[i]:
                found.append((at + 1, top[i], bottom[i]))
            at, i = at + 1, i + 1
            continue
        j = i
        while j <= last and (top[j] == "-" or bottom[j] == "-"):
            j += 1
        deleted = "".join(c for c in top[i:j] if c != "-")
        inserted = "".join(c for c in bottom[i:j] if c != "-")
        anchor = reference[at - 1]
        found.append(normalise(reference, at, anchor + deleted, anchor + inserted))
        at, i = at + len(deleted), j
    return found


Row = tuple[str, int, str, str, int, int]


def build(data: Path) -> tuple[dict[str, str], list[Row]]:
    """The reference (gene -> bases) and the records (gene, POS, REF, ALT, AC, AN)."""
    aligner = _aligner()
    found = alleles(data)
    reference: dict[str, str] = {}
    rows: list[Row] = []
    for gene in GENES:
        counts = found[gene]
        chosen = counts.most_common(1)[0][0]
        reference[gene] = chosen
        carriers: Counter[Variant] = Counter()
        for allele, n in counts.items():
            if allele != chosen:
                other = oriented(chosen, allele)
                for variant in set(differences(chosen, other, aligner)):
                    carriers[variant] += n
        total = sum(counts.values())
        rows += [(gene, p, r, a, carriers[(p, r, a)], total) for p, r, a in sorted(carriers)]
    return reference, rows


def write(data: Path, out: Path) -> tuple[Path, Path]:
    """Write the reference FASTA and the VCF into ``out``; see the module contract."""
    reference, rows = build(data)
    fasta = out / "saureus_genes.fa"
    with fasta.open("w") as f:
        for gene, bases in reference.items():
            f.write(f">{gene}\n")
            f.writelines(bases[i : i + 60] + "\n" for i in range(0, len(bases), 60))
    vcf = out / "saureus_variants.vcf"
    with vcf.open("w") as f:
        f.write("##fileformat=VCFv4.2\n")
        f.write(
            "##source=helixserve tests/support/amr_variants.py from "
            "hzi-bifo/seminar-dlmb-2024-winter-public@ce9f0a3 (S. aureus cefoxitin isolates)\n"
        )
        f.write("##reference=saureus_genes.fa\n")
        for gene, bases in reference.items():
            f.write(f"##contig=<ID={gene},length={len(bases)}>\n")
        f.write('##INFO=<ID=AC,Number=A,Type=Integer,Description="Isolates carrying ALT">\n')
        f.write('##INFO=<ID=AN,Number=1,Type=Integer,Description="Isolates carrying the gene">\n')
        f.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for gene, pos, ref, alt, ac, an in rows:
            f.write(
                f"{gene}\t{pos}\t{gene}:{pos}:{ref}:{alt}\t{ref}\t{alt}\t.\t.\tAC={ac};AN={an}\n"
            )
    return fasta, vcf


if __name__ == "__main__":
    made = write(Path(sys.argv[1]), Path(sys.argv[2]))
    print(*made, sep="\n")
