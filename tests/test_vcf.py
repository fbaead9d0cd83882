"""VCF scoring: reading VCF lines, the indexed reference, the windows around a variant, the
effects against hand computations, every reason an allele is refused, and the resumable file run.

The models are real ONNX files whose answers a test can compute by hand: ``gc`` (exactly 50 nt,
P = sigmoid(0.5 * #GC - 12.5)) and ``tokensum`` (any length, tokens padded or cut to 64: the
value is the sum of the tokens A=1, C=2, G=3, T=4 of the first 64 bases).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helixserve.batch.predict import BatchError
from helixserve.batch.variants import score_vcf
from helixserve.cli.app import app
from helixserve.errors import InputError, InvalidFile
from helixserve.explain.vcf_effects import VcfOptions, VcfScorer
from helixserve.explain.windows import UnscorableVariant, check_ref, cut, windowing
from helixserve.inputs.records import BadRecord
from helixserve.inputs.reference import bgzip, open_reference
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.vcf import VcfReader, VcfRecord, read_vcf
from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore
from tests.support.server import publish_gc, publish_tokensum

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
TOKENS = {"A": 1, "C": 2, "G": 3, "T": 4}
random.seed(21)
CONTIG = "".join(random.choice("ACGT") for _ in range(300))


def vcf_text(*records: tuple[str, int, str, str]) -> str:
    lines = [f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\t." for c, p, r, a in records]
    return HEADER + "".join(line + "\n" for line in lines)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    publish_tokensum(store)
    return store


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "ref.fa"
    lines = [CONTIG[i : i + 60] for i in range(0, len(CONTIG), 60)]
    path.write_text(">g1 a random contig\n" + "\n".join(lines) + "\n>short\nACGTACGTAC\n")
    return path


def gc_score(window: str) -> float:
    return 1 / (1 + math.exp(-(0.5 * sum(b in "GC" for b in window) - 12.5)))


# --- reading VCF ----------------------------------------------------------------------------


def test_every_bad_line_is_reported_and_the_others_read(tmp_path: Path) -> None:
    text = HEADER + (
        "g1\t5\tv1\tA\tG,<DEL>\t.\t.\t.\n"
        "\n"
        "g1\tx\tv2\tA\tG\t.\t.\t.\n"
        "g1 6 v3 A G . . .\n"
        "g1\t7\tv4\tAQ\tG\t.\t.\t.\n"
        "#late\n"
        "\t8\tv6\tA\tG\t.\t.\t.\n"
        "g1\t0\tv7\tA\tG\t.\t.\t.\n"
        "g1\t9\tv8\tac\t.\t.\t.\tDP=3\n"
        "g1\t\u00b2\tv9\tA\tG\t.\t.\t.\n"
    )
    (tmp_path / "in.vcf").write_text(text)
    with read_vcf(tmp_path / "in.vcf") as reader:
        items = list(reader)
    good = [i for i in items if isinstance(i, VcfRecord)]
    assert [(r.index, r.line, r.where, r.ref, r.alts) for r in good] == [
        (1, 3, "g1:5", "A", ("G", "<DEL>")),
        (8, 11, "g1:9", "AC", (".",)),
    ]
    bad = {i.index: str(i.error) for i in items if isinstance(i, BadRecord)}
    assert bad == {
        2: "record 2 (id g1:x), line 5: POS 'x' is not a whole number from 1; VCF positions are "
        "1-based.",
        3: "record 3, line 6: the line has 1 tab-separated column(s); a VCF data line has at least "
        "8 (CHROM POS ID REF ALT QUAL FILTER INFO). Check that the columns are separated by tabs, "
        "not spaces.",
        4: "record 4 (id g1:7), line 7: REF 'AQ' is not reference bases; REF is one or more of A, "
        "C, G, T, N.",
        5: "record 5, line 8: a '#' line after the #CHROM header line; header lines come first, "
        "data lines after.",
        6: "record 6 (id :8), line 9: CHROM is empty; it names the reference sequence (contig) of "
        "the variant.",
        7: "record 7 (id g1:0), line 10: POS '0' is not a whole number from 1; VCF positions are "
        "1-based.",
        9: "record 9 (id g1:\u00b2), line 12: POS '\u00b2' is not a whole number from 1; VCF "
        "positions are 1-based.",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "g1\t5\t.\tA\tG\t.\t.\t.\n",
            "line 1 of the VCF is a data line, but no '#CHROM POS ID REF ALT ...' header line "
            "came before it; a VCF starts with its ## meta lines and the #CHROM line.",
        ),
        (
            "##fileformat=VCFv4.2\n",
            "the VCF has no '#CHROM POS ID REF ALT QUAL FILTER INFO' header line and no records; "
            "check that this is a VCF file.",
        ),
    ],
)
def test_a_file_that_is_not_a_vcf_is_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.vcf").write_text(text)
    with pytest.raises(InvalidFile) as caught:
        read_vcf(tmp_path / "x.vcf")
    assert str(caught.value) == message


# --- the reference --------------------------------------------------------------------------


@pytest.mark.parametrize("packing", ["none", "gzip", "bgzip"])
def test_reference_in_a_read_only_folder(reference: Path, tmp_path: Path, packing: str) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "ref.fa"
    if packing == "gzip":
        target = folder / "ref.fa.gz"
        target.write_bytes(gzip.compress(reference.read_bytes()))
    elif packing == "bgzip":
        target = folder / "ref.fa.gz"
        bgzip(reference, target)
    else:
        target.write_bytes(reference.read_bytes())
    folder.chmod(0o555)
    try:
        with open_reference(target) as ref:
            assert ref.names == ["g1", "short"]
            assert (ref.length("g1"), ref.length("nope")) == (300, None)
            assert ref.fetch("g1", 95, 105) == CONTIG[95:105]
        assert sorted(p.name for p in folder.iterdir()) == [target.name]
    finally:
        folder.chmod(0o755)


def test_a_reference_that_is_not_fasta_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.fa").write_text(">a\nACGT\nAC\nACGT\n")
    with pytest.raises(InvalidFile) as caught:
        open_reference(tmp_path / "bad.fa")
    assert str(caught.value) == (
        "the reference bad.fa cannot be indexed as FASTA: every record needs a '>name' line, "
        "names must be unique, and inside a record every line but the last must have the same "
        "length. Fix the file (e.g. `seqkit seq -w 60`), or compress it with bgzip instead of gzip."
    )


# --- windows --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pos", "ref_len", "alt", "start", "alt_window"),
    [
        # an SNV: centred on it
        (100, 1, "T", 74, lambda: CONTIG[74:99] + "T" + CONTIG[100:124]),
        # near the start: the window moves inward, never off the contig
        (3, 1, "T", 0, lambda: CONTIG[0:2] + "T" + CONTIG[3:50]),
        # a deletion: filled from the bases after the window
        (150, 4, "", 126, lambda: CONTIG[126:149] + CONTIG[153:180]),
        # a deletion at the contig's end: filled from the bases before the window
        (298, 3, "", 250, lambda: CONTIG[247:297]),
        # an insertion: the bases farthest right are dropped
        (150, 1, "GGGG", 124, lambda: CONTIG[124:149] + "GGGG" + CONTIG[150:171]),
    ],
)
def test_windows_for_an_exact_length_model(
    reference: Path,
    pos: int,
    ref_len: int,
    alt: str,
    start: int,
    alt_window: Callable[[], str],
) -> None:
    need = windowing(SequenceSchema(length=50))
    with open_reference(reference) as ref:
        ref_bases = CONTIG[pos - 1 : pos - 1 + ref_len]
        span = check_ref(ref, "g1", pos, ref_bases)
        made = cut(ref, span, alt, need)
    assert (made.start, made.end, made.ref) == (start, start + 50, CONTIG[start : start + 50])
    assert made.alt == alt_window()
    assert len(made.alt) == 50


def test_a_window_that_cannot_be_made(reference: Path) -> None:
    need = windowing(SequenceSchema(length=50))
    with open_reference(reference) as ref:
        with pytest.raises(UnscorableVariant) as caught:
            cut(ref, check_ref(ref, "short", 2, "C"), "G", need)
        assert (caught.value.reason, str(caught.value)) == (
            "window",
            "contig short is 10 nt, shorter than the 50-nt window this model needs.",
        )
        with pytest.raises(UnscorableVariant) as caught:
            cut(ref, check_ref(ref, "g1", 100, CONTIG[99]), "A" * 51, need)
        assert str(caught.value) == (
            "ALT is 51 nt, longer than the 50-nt window this model sees; such a variant cannot be "
            "scored with this model."
        )
    with pytest.raises(InputError) as refused:
        windowing(SequenceSchema(length=50), window=40)
    assert str(refused.value) == (
        "a window of 40 nt does not fit this model, which takes exactly 50 nt; choose a window "
        "in that range, or leave it out."
    )


# --- effects --------------------------------------------------------------------------------


def test_effects_match_a_hand_computation(store: ModelStore, reference: Path) -> None:
    records = [("g1", 100, CONTIG[99], "GC"), ("g1", 3, CONTIG[2], "A,T")]
    with open_reference(reference) as ref, read_vcf_text(records) as reader:
        scorer = VcfScorer(Predictor.from_store(store, "gc"), ref, VcfOptions(strands="both"))
        effects = scorer.score([r for r in reader if isinstance(r, VcfRecord)])
    assert [(e.record.pos, e.allele, e.alt, e.window) for e in effects] == [
        (100, 1, "GC", (74, 124)),
        (3, 1, "A", (0, 50)),
        (3, 2, "T", (0, 50)),
    ]
    first = CONTIG[74:124]
    changed = (CONTIG[74:99] + "GC" + CONTIG[100:124])[:50]
    assert effects[0].ref_score == pytest.approx(gc_score(first), abs=1e-6)
    assert effects[0].effect == pytest.approx(gc_score(changed) - gc_score(first), abs=1e-6)
    for e in effects:  # G+C counts are the same on both strands
        assert e.strand_effects is not None
        assert e.strand_effects[0] == pytest.approx(e.strand_effects[1], abs=1e-6)


def read_vcf_text(records: list[tuple[str, int, str, str]]) -> VcfReader:
    return read_vcf(io.BytesIO(vcf_text(*records).encode()))


def test_every_reason_is_reported_and_the_rest_scored(store: ModelStore, reference: Path) -> None:
    wrong = "A" if CONTIG[149] != "A" else "C"
    records = [
        ("g1", 100, CONTIG[99], "T,<DEL>,*,A[g1:5[,."),
        ("g1", 150, wrong, "G"),
        ("chrX", 5, "A", "G"),
        ("g1", 300, CONTIG[299] + "A", "A"),
        ("short", 2, "C", "G"),
        ("g1", 120, CONTIG[119], "N,R"),
        ("g1", 200, CONTIG[199], "G"),
    ]
    with open_reference(reference) as ref, read_vcf_text(records) as reader:
        scorer = VcfScorer(Predictor.from_store(store, "gc"), ref, VcfOptions())
        effects = scorer.score([r for r in reader if isinstance(r, VcfRecord)])
    outcome = [(e.record.index, e.alt, e.error.reason if e.error else "ok") for e in effects]
    assert outcome == [
        (1, "T", "ok"),
        (1, "<DEL>", "symbolic"),
        (1, "*", "symbolic"),
        (1, "A[g1:5[", "symbolic"),
        (1, ".", "no_alt"),
        (2, "G", "ref_mismatch"),
        (3, "G", "unknown_contig"),
        (4, "A", "off_contig"),
        (5, "G", "window"),
        (6, "N", "model"),
        (6, "R", "bad_allele"),
        (7, "G", "ok"),
    ]
    messages = {(e.record.index, e.alt): str(e.error) for e in effects if e.error}
    assert messages[(2, "G")] == (
        f"record 2 (id g1:150), line 4: the reference has {CONTIG[149]!r} at g1:150, not "
        f"{wrong!r} as REF says; check that the VCF was called against this reference (the same "
        "build)."
    )
    assert messages[(3, "G")] == (
        "record 3 (id chrX:5), line 5: contig 'chrX' is not in the reference, which holds 2 (g1, "
        "short); check that the VCF and the reference name contigs alike (e.g. 'chr1' and '1')."
    )
    assert messages[(1, "<DEL>")] == (
        "record 1 (id g1:100), line 3: ALT <DEL> is a symbolic allele (a structural variant "
        "without its bases)."
    )
    assert messages[(6, "N")].startswith(
        "record 6 (id g1:120), line 8: the model cannot take the ALT window (g1:95-144): DNA "
        "sequence is not valid DNA: position 26 is 'N'"
    )


def test_a_whole_gene_model_reads_the_whole_contig(store: ModelStore, reference: Path) -> None:
    """tokensum takes any length: the window is the whole contig, cut to 64 tokens by the model,
    which therefore cannot see a variant past base 64."""
    records = [("short", 2, "C", "T,CGG"), ("short", 9, "AC", "A"), ("g1", 100, CONTIG[99], "A")]
    with open_reference(reference) as ref, read_vcf_text(records) as reader:
        scorer = VcfScorer(Predictor.from_store(store, "tokensum"), ref, VcfOptions())
        effects = scorer.score([r for r in reader if isinstance(r, VcfRecord)])
    whole = sum(TOKENS[b] for b in "ACGTACGTAC")
    assert [(e.window, e.ref_score, e.effect) for e in effects[:3]] == [
        ((0, 10), whole, 2.0),  # C -> T: 2 -> 4
        ((0, 10), whole, 6.0),  # two G inserted
        ((0, 10), whole, -2.0),  # the last C deleted
    ]
    assert str(effects[3].error) == (
        "record 3 (id g1:100), line 5: this model reads only the first 64 nt of a sequence, and "
        "the variant is at nt 100 of contig g1: the model cannot see it. Give a smaller window."
    )


# --- the file run ---------------------------------------------------------------------------


def _cli(store: ModelStore, *args: str) -> str:
    result = CliRunner().invoke(app, ["variants", *args, "--store", store.uri])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_writes_the_vcf_back_with_info_fields(
    store: ModelStore, reference: Path, tmp_path: Path
) -> None:
    records = [("g1", 100, CONTIG[99], "GC,<DEL>"), ("chrX", 5, "A", "G")]
    (tmp_path / "in.vcf").write_text(vcf_text(*records).replace("\t.\n", "\tDP=7\n", 1))
    out = tmp_path / "out.vcf.gz"
    _cli(store, "gc", str(tmp_path / "in.vcf"), "--reference", str(reference), "-o", str(out))
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert lines[0] == "##fileformat=VCFv4.2"
    assert lines[-3] == "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
    assert lines[-4] == (
        "##helixserve_variants=<model=gc@1,reference=ref.fa,window=50_nt_around_the_variant,"
        "strands=forward>"
    )
    first = CONTIG[74:124]
    changed = (CONTIG[74:99] + "GC" + CONTIG[100:124])[:50]
    effect = f"{gc_score(changed) - gc_score(first):.6g}"
    assert lines[-2].startswith(f"g1\t100\t.\t{CONTIG[99]}\tGC,<DEL>\t.\t.\tDP=7;HX_REF=")
    assert lines[-2].endswith(f";HX_EFFECT={effect},.;HX_STATUS=ok,symbolic")
    assert lines[-1] == (
        "chrX\t5\t.\tA\tG\t.\t.\tHX_REF=.;HX_ALT=.;HX_EFFECT=.;HX_STATUS=unknown_contig"
    )
    errors = (tmp_path / "out.errors.csv").read_text().splitlines()
    assert errors[0] == "index,line,chrom,pos,id,ref,alt,reason,message"
    assert [e.split(",")[7] for e in errors[1:]] == ["symbolic", "unknown_contig"]


def test_cli_writes_a_table(store: ModelStore, reference: Path, tmp_path: Path) -> None:
    (tmp_path / "in.vcf").write_text(vcf_text(("g1", 100, CONTIG[99], "GC")))
    out = tmp_path / "out.jsonl"
    _cli(store, "gc", str(tmp_path / "in.vcf"), "--reference", str(reference), "-o", str(out))
    row = json.loads(out.read_text())
    assert " ".join(row) == (
        "index line chrom pos id ref alt window_start window_end ref_score alt_score effect"
    )
    assert (row["window_start"], row["window_end"], row["alt"]) == (75, 124, "GC")


def test_resume_gives_the_same_files(store: ModelStore, reference: Path, tmp_path: Path) -> None:
    records = [
        ("g1", p, CONTIG[p - 1], "A" if CONTIG[p - 1] != "A" else "C") for p in range(1, 300, 7)
    ]
    records.insert(5, ("g1", 11, "N", "G"))  # an N in REF matches any base
    records.insert(9, ("chrX", 11, "A", "G"))
    (tmp_path / "in.vcf").write_text(vcf_text(*records))
    predictor = Predictor.from_store(store, "gc")
    args = (predictor, str(tmp_path / "in.vcf"), str(reference))
    whole = score_vcf(*args, str(tmp_path / "whole.vcf"), batch_size=4)

    def stop(position: int, scored: int, refused: int) -> None:
        if scored >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_vcf(*args, str(tmp_path / "cut.vcf"), batch_size=4, progress=stop)
    assert not (tmp_path / "cut.vcf").exists()
    with pytest.raises(BatchError):
        score_vcf(*args, str(tmp_path / "cut.vcf"), batch_size=4)
    again = score_vcf(*args, str(tmp_path / "cut.vcf"), batch_size=4, resume=True)
    assert again.resumed_from == 16 and (again.scored, again.refused) == (
        whole.scored,
        whole.refused,
    )
    for name in ("cut.vcf", "cut.errors.csv"):
        whole_name = name.replace("cut", "whole")
        assert (tmp_path / name).read_bytes() == (tmp_path / whole_name).read_bytes()
    assert (whole.scored, whole.refused) == (44, 1)


def test_resume_refuses_another_reference(
    store: ModelStore, reference: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.vcf").write_text(vcf_text(("g1", 100, CONTIG[99], "G")))
    predictor = Predictor.from_store(store, "gc")
    out = str(tmp_path / "out.tsv")

    def stop(position: int, scored: int, refused: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_vcf(predictor, str(tmp_path / "in.vcf"), str(reference), out, progress=stop)
    other = tmp_path / "other.fa"
    other.write_text(reference.read_text())
    with pytest.raises(BatchError) as caught:
        score_vcf(predictor, str(tmp_path / "in.vcf"), str(other), out, resume=True)
    journal = tmp_path / "out.tsv.parts" / "journal.json"
    assert str(caught.value) == (
        f"cannot resume: the reference, reference_stamp changed since the interrupted run "
        f"(journal {journal}). Delete {journal.parent} to start again."
    )
