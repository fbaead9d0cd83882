"""The readers on the real datasets in ../shared/data (tests read them; the product never does)."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
from Bio.SeqIO.FastaIO import SimpleFastaParser

from helixserve.errors import InvalidSequence
from helixserve.inputs.encoding import one_hot_decode, one_hot_encode, token_decode, token_encode
from helixserve.inputs.images import ImageSchema, decode_image
from helixserve.inputs.readers import read_sequences, validate_records
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import Feature, FeatureRow, TabularSchema, read_rows

TUMOUR_COLUMNS = [
    "id",
    "clump_thickness",
    "uniformity_cell_size",
    "uniformity_cell_shape",
    "marginal_adhesion",
    "single_epithelial_cell_size",
    "bare_nuclei",
    "bland_chromatin",
    "normal_nucleoli",
    "mitoses",
    "class",
]


def test_primer_sequences_all_valid_and_encode(shared_data: Path) -> None:
    path = shared_data / "zou2019_primer_tf_binding" / "sequences.txt"
    items = list(validate_records(read_sequences(path), SequenceSchema(length=50)))
    assert len(items) == 2_000
    assert all(isinstance(i, Record) for i in items)
    assert (items[-1].index, items[-1].line) == (2_000, 2_000)
    seqs = [i.sequence for i in items if isinstance(i, Record)]
    x = one_hot_encode(seqs)
    assert x.shape == (2_000, 4, 50)
    assert one_hot_decode(x) == seqs


def test_yeast_native_utrs_csv_gz_with_flanks(shared_data: Path) -> None:
    path = shared_data / "cuperus2017_yeast_utr" / "Native_UTRs.csv.gz"
    schema = SequenceSchema(min_length=2, max_length=50)
    items = list(
        validate_records(read_sequences(path, sequence_col="UTR", id_col="UTR_name"), schema)
    )
    assert len(items) == 11_856
    assert not [i for i in items if isinstance(i, BadRecord)]
    first = items[0]
    assert isinstance(first, Record)
    assert (first.id, first.line, first.sequence) == (
        "YAL001C:38:0",
        2,
        "AGAGGACGTTTGGTTGAAGCCAACTAGCCACAAGAAAA",
    )
    assert first.fields["growth_rate"] == "0.298692484478"
    full = [i.sequence for i in items if isinstance(i, Record) and len(i.sequence) == 50][:100]
    x = one_hot_encode(full, flank_left="A" * 10, flank_right="A" * 10)
    assert x.shape == (100, 4, 70)


def test_amr_fasta_matches_biopython(shared_data: Path) -> None:
    path = (
        shared_data
        / "amr_gene_resistance_hzi"
        / "Staphylococcus_aureus_cefoxitin"
        / "train_seq.txt.gz"
    )
    ours = [r for r in read_sequences(path) if isinstance(r, Record)]
    with gzip.open(path, "rt") as handle:
        theirs = list(SimpleFastaParser(handle))
    assert len(ours) == len(theirs) == 2_045
    assert [(r.id, r.sequence) for r in ours] == [(t.split()[0], s) for t, s in theirs]
    lengths = [len(r.sequence) for r in ours]
    tokens = token_encode([r.sequence.upper() for r in ours[:50]], max(lengths))
    assert token_decode(tokens) == [r.sequence.upper() for r in ours[:50]]


def test_amr_long_table_variable_length(shared_data: Path) -> None:
    path = shared_data / "amr_gene_resistance_hzi" / "genes_long.csv.gz"
    strict = SequenceSchema(min_length=36, max_length=3552)
    refused = [
        i
        for i in validate_records(read_sequences(path, id_col="header"), strict)
        if isinstance(i, BadRecord)
    ]
    # 16 of the real genes carry one or more N: an ACGT-only model refuses exactly those.
    assert len(refused) == 16
    assert all(isinstance(i.error, InvalidSequence) and i.error.character == "N" for i in refused)
    schema = strict.model_copy(update={"alphabet": "ACGTN"})
    items = list(validate_records(read_sequences(path, id_col="header"), schema))
    assert len(items) == 5_733
    assert not [i for i in items if isinstance(i, BadRecord)]
    labels = Counter(i.fields["label"] for i in items if isinstance(i, Record))
    assert sum(labels.values()) == 5_733


def test_uci_tumour_rows_with_question_marks(shared_data: Path) -> None:
    path = shared_data / "uci_breast_cancer_wisconsin_original" / "breast-cancer-wisconsin.data"
    strict = TabularSchema(
        features=[Feature(name=n, type="int", min=1, max=10) for n in TUMOUR_COLUMNS[1:-1]]
    )
    items = list(read_rows(path, strict, header=TUMOUR_COLUMNS, id_col="id"))
    bad = [i for i in items if isinstance(i, BadRecord)]
    assert len(items) == 699
    assert len(bad) == 16
    assert str(bad[0].error).endswith(
        "bare_nuclei is missing ('?'); this model needs a whole number from 1 to 10."
    )
    lenient = strict.model_copy(update={"allow_missing": True})
    rows = [i for i in read_rows(path, lenient, header=TUMOUR_COLUMNS, id_col="id")]
    assert all(isinstance(r, FeatureRow) for r in rows)
    assert Counter(r.fields["class"] for r in rows if isinstance(r, FeatureRow)) == {
        "2": 458,
        "4": 241,
    }


def test_rxrx1_images_decode(shared_data: Path) -> None:
    folder = shared_data / "rxrx1_sample_images" / "images"
    paths = sorted(folder.rglob("*_w1.png"))
    assert len(paths) == 36  # 8 training sites per cell type + 4 HEPG2 test sites
    schema = ImageSchema(width=128, height=128, channels=1)
    arrays = [decode_image(p.read_bytes(), schema) for p in paths]
    assert all(a.shape == (1, 128, 128) and a.dtype == np.float32 for a in arrays)
    assert all(a.min() >= 0.0 and a.max() <= 1.0 for a in arrays)
