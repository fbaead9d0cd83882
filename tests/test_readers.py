"""Streaming readers: FASTA, CSV/TSV, text; every malformed-input case with its exact message."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixserve.errors import InvalidFile
from helixserve.inputs.readers import (
    delimiter_for,
    detect_format,
    read_sequences,
    validate_records,
)
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.sequence import SequenceSchema
from tests.conftest import write


def good(items: list[Record | BadRecord]) -> list[tuple[int, int, str | None, str]]:
    return [(r.index, r.line, r.id, r.sequence) for r in items if isinstance(r, Record)]


def bad(items: list[Record | BadRecord]) -> list[str]:
    return [str(r.error) for r in items if isinstance(r, BadRecord)]


def read(path: Path, **kwargs: object) -> list[Record | BadRecord]:
    return list(read_sequences(path, **kwargs))  # type: ignore[arg-type]


# --- FASTA ----------------------------------------------------------------------------------------


def test_multiline_fasta_keeps_ids_lines_and_descriptions(files: Path) -> None:
    items = read(files / "small.fasta")
    assert good(items) == [
        (1, 1, "seq1", "ACGTACGTAC" + "GTACGTACGT"),
        (2, 5, "seq2", "TTTTGGGGCC"),
        (3, 7, "chr2_77", "AACCGGTTAA" + "CCGGTTAACC" + "GG"),
    ]
    assert items[0].fields == {"description": "first record, two lines"}  # type: ignore[union-attr]


@pytest.mark.parametrize("gz", [False, True])
def test_fasta_crlf_bom_and_gzip(tmp_path: Path, gz: bool) -> None:
    text = "\ufeff>a\r\nACGT\r\nAC\r\n>b\r\nGGGG\r\n"
    path = write(tmp_path / ("x.fa.gz" if gz else "x.fa"), text, gz=gz)
    assert good(read(path)) == [(1, 1, "a", "ACGTAC"), (2, 4, "b", "GGGG")]


@pytest.mark.parametrize(
    ("chosen", "head", "delimiter"),
    [
        ("tsv", b"id\tsequence\n", "\t"),
        ("csv", b"id,sequence\n", ","),
        ("csv", b"\nid;sequence\nx;ACGT\n", ";"),
        ("csv", b"id;note,sequence\n", ","),  # a comma in the header: commas
    ],
)
def test_the_delimiter_comes_from_the_first_line(chosen: str, head: bytes, delimiter: str) -> None:
    assert delimiter_for(chosen, head) == delimiter


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = write(tmp_path / "upload.bin", ">a\nACGT\n", gz=True)
    assert good(read(path)) == [(1, 1, "a", "ACGT")]


def test_fasta_record_without_sequence_does_not_stop_the_others(tmp_path: Path) -> None:
    path = write(tmp_path / "x.fasta", ">a\nACGT\n>empty one\n>c\nGGCC\n>last\n")
    items = read(path)
    assert good(items) == [(1, 1, "a", "ACGT"), (3, 4, "c", "GGCC")]
    assert bad(items) == [
        "record 2 (id empty), line 3: FASTA record has no sequence: its header is followed by "
        "another header or the end of the file. Add the sequence below the header, or delete the "
        "header.",
        "record 4 (id last), line 6: FASTA record has no sequence: its header is followed by "
        "another header or the end of the file. Add the sequence below the header, or delete the "
        "header.",
    ]


def test_fasta_without_headers_when_fasta_is_asked_for(tmp_path: Path) -> None:
    path = write(tmp_path / "x.fasta", "ACGTACGT\nGGGG\n")
    with pytest.raises(InvalidFile) as info:
        read(path)
    assert str(info.value) == (
        "line 1: this line is not a FASTA header: a FASTA file starts with a line such as '>seq1', "
        "got 'ACGTACGT'. Add a '>name' line above each sequence, or upload the file as plain "
        "text (one sequence per line)."
    )


def test_headerless_sequences_without_fasta_name_are_read_as_text(tmp_path: Path) -> None:
    path = write(tmp_path / "seqs.txt", "ACGTACGT\nGGGG\n")
    assert good(read(path)) == [(1, 1, None, "ACGTACGT"), (2, 2, None, "GGGG")]


def test_fasta_comments_and_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "x.fa", ">a\n\nAC\n;comment\nGT\n\n>b\nTT\n")
    assert good(read(path)) == [(1, 1, "a", "ACGT"), (2, 7, "b", "TT")]


def test_non_utf8_bytes_in_one_record(tmp_path: Path) -> None:
    path = write(tmp_path / "x.fa", b">a\nACGT\n>b caf\xe9\nACGT\n>c\nAC\xffGT\n>d\nGG\n")
    items = read(path)
    assert good(items) == [(1, 1, "a", "ACGT"), (4, 7, "d", "GG")]
    assert bad(items) == [
        "record 2, line 3: column 7 holds byte 0xE9, which is not valid UTF-8; save the "
        "file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again.",
        "record 3 (id c), line 5: line 6: column 3 holds byte 0xFF, which is not valid UTF-8; "
        "save the file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again.",
    ]


def test_nul_byte_in_a_text_file(tmp_path: Path) -> None:
    path = write(tmp_path / "x.fa", b">a\nACGT\n>b\nAC\x00GT\n")
    assert bad(read(path)) == [
        "record 2 (id b), line 3: line 4: column 3 holds a NUL byte (0x00), which does not belong "
        "in a text file; the file may be corrupted or not text."
    ]


def test_ten_million_nt_line_streams(tmp_path: Path) -> None:
    path = write(tmp_path / "big.fa", ">big\n" + "ACGT" * 2_500_000 + "\n>small\nAC\n")
    items = read(path)
    assert [(r.id, len(r.sequence)) for r in items if isinstance(r, Record)] == [
        ("big", 10_000_000),
        ("small", 2),
    ]
    checked = list(validate_records(items, SequenceSchema(length=50)))
    assert bad(checked)[0] == (
        "record 1 (id big), line 1: DNA sequence length is 10,000,000 nt, but this model needs "
        "exactly 50 nt; trim it to 50 nt."
    )


# --- whole-file problems --------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    for content in (b"", b"\n\n  \n"):
        with pytest.raises(InvalidFile) as info:
            read(write(tmp_path / "e.csv", content))
        assert str(info.value) == (
            "file is empty: it has no records. Upload a FASTA, CSV/TSV or one-sequence-per-line "
            "text file (optionally gzip-compressed)."
        )


def test_empty_gzip(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match=r"^file is empty"):
        read(write(tmp_path / "e.fa.gz", b"", gz=True))


def test_binary_file(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 40
    with pytest.raises(InvalidFile) as info:
        read(write(tmp_path / "x.fa", blob))
    assert str(info.value) == (
        "file looks binary, not text (byte 0x00 at offset 0, and 832 of the first 8,192 bytes "
        "are control bytes). Expected FASTA, CSV/TSV or plain text, optionally gzip-compressed."
    )


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    body = "".join(f">r{i}\n{'ACGT' * 20}\n" for i in range(20_000))
    data = gzip.compress(body.encode())
    path = write(tmp_path / "cut.fa.gz", data[: len(data) // 2])
    items = read(path)
    records = [r for r in items if isinstance(r, Record)]
    assert 1_000 < len(records) < 20_000
    assert [r.id for r in records[:3]] == ["r0", "r1", "r2"]
    last = items[-1]
    assert isinstance(last, BadRecord)
    assert "file is truncated or damaged: the compressed data ends after line" in str(last.error)
    assert str(last.error).endswith(
        "Records read before that point are kept; upload the complete file to score the rest."
    )


def test_missing_file() -> None:
    with pytest.raises(InvalidFile, match=r"^file not found: /no/such\.fa; check the path"):
        read(Path("/no/such.fa"))


# --- CSV / TSV ------------------------------------------------------------------------------------


def test_csv_with_auto_detected_columns(files: Path) -> None:
    items = read(files / "small.csv")
    assert good(items) == [(1, 2, "s1", "ACGTACGT"), (2, 3, "s2", "GGGGCCCC"), (4, 5, "s4", "TTAA")]
    assert items[0].fields == {"label": "1"}  # type: ignore[union-attr]
    assert bad(items) == [
        "record 3, line 4: row has 2 fields but the header has 3 (id, sequence, label); check for "
        "a missing or extra delimiter or an unclosed quote."
    ]


def test_csv_named_columns_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "Name,UTR,growth\nu1,ACGT,0.5\n")
    assert good(read(path, sequence_col="utr", id_col="NAME")) == [(1, 2, "u1", "ACGT")]


def test_csv_without_the_named_column(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "id,dna,label\na,ACGT,1\n")
    with pytest.raises(InvalidFile) as info:
        read(path, sequence_col="seq")
    assert str(info.value) == (
        "column 'seq' is not in the file; its header has: id, dna, label. Pass one of these as "
        "--sequence-col."
    )


def test_csv_without_any_sequence_column(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "id,value\na,1\n")
    with pytest.raises(InvalidFile) as info:
        read(path)
    assert str(info.value) == (
        "no sequence column found: the header has id, value, and none is named "
        "sequence / seq / dnasequence / dna_sequence. Name the column with --sequence-col."
    )


def test_quoted_fields_and_embedded_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", 'id,sequence,note\n"a,1",ACGT,"two\nlines"\nb,GG,x\n')
    items = read(path)
    assert good(items) == [(1, 2, "a,1", "ACGT"), (2, 4, "b", "GG")]


def test_tsv_and_windows_line_endings_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "x.tsv", "\ufeffid\tsequence\r\na\tACGT\r\nb\tGGCC\r\n")
    assert good(read(path)) == [(1, 2, "a", "ACGT"), (2, 3, "b", "GGCC")]


def test_csv_non_utf8_row_is_reported_and_others_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"id,sequence\na,ACGT\nb\xe9,GG\nc,TT\n")
    items = read(path)
    assert good(items) == [(1, 2, "a", "ACGT"), (3, 4, "c", "TT")]
    assert bad(items) == [
        "record 2, line 3: column 2 holds byte 0xE9, which is not valid UTF-8; save the "
        "file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
    ]


def test_single_column_csv_without_header_is_read_as_sequences(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "ACGTACGTAA\nGGGGCCCCAA\n")
    assert good(read(path)) == [(1, 1, None, "ACGTACGTAA"), (2, 2, None, "GGGGCCCCAA")]


def test_duplicate_header(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile) as info:
        read(write(tmp_path / "x.csv", "sequence,sequence\nA,C\n"))
    assert str(info.value) == (
        "column 'sequence' appears twice in the header; give every column its own name."
    )


def test_ten_million_nt_csv_cell(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "id,sequence\nbig," + "ACGT" * 2_500_000 + "\nsmall,AC\n")
    assert [len(r.sequence) for r in read(path) if isinstance(r, Record)] == [10_000_000, 2]


def test_text_file_with_header_and_comments(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", "sequence\n# a comment\nACGT\n\nggcc\n")
    assert good(read(path)) == [(1, 3, None, "ACGT"), (2, 5, None, "ggcc")]


def test_binary_stream_input() -> None:
    items = list(read_sequences(io.BytesIO(b">a\nACGT\n")))
    assert good(items) == [(1, 1, "a", "ACGT")]


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("x", b">a\nAC", "fasta"),
        ("x.fasta.gz", b"AC", "fasta"),
        ("x.tsv", b"a,b", "tsv"),
        ("x", b"id\tseq", "tsv"),
        ("x.csv", b"seq", "csv"),
        ("x", b"id,seq", "csv"),
        ("x.txt", b"ACGT", "text"),
        ("x", b"\xef\xbb\xbf>a", "fasta"),
    ],
)
def test_detect_format(name: str, head: bytes, expected: str) -> None:
    assert detect_format(name, head) == expected


# --- validation of records ------------------------------------------------------------------------


def test_validate_records_locates_each_error(files: Path) -> None:
    items = list(validate_records(read_sequences(files / "small.fasta"), SequenceSchema(length=20)))
    assert good(items) == [(1, 1, "seq1", "ACGTACGTACGTACGTACGT")]
    assert bad(items) == [
        "record 2 (id seq2), line 5: DNA sequence length is 10 nt, but this model needs exactly "
        "20 nt; extend it to 20 nt.",
        "record 3 (id chr2_77), line 7: DNA sequence length is 22 nt, but this model needs "
        "exactly 20 nt; trim it to 20 nt.",
    ]


fasta_records = st.lists(
    st.tuples(
        st.text(
            alphabet=st.characters(categories=["L", "N"], max_codepoint=0x2FF),
            min_size=1,
            max_size=12,
        ),
        st.text(alphabet="ACGTN", min_size=1, max_size=300),
    ),
    min_size=1,
    max_size=20,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(records=fasta_records, width=st.integers(min_value=1, max_value=80), gz=st.booleans())
def test_fasta_write_read_round_trip(
    tmp_path: Path, records: list[tuple[str, str]], width: int, gz: bool
) -> None:
    lines = []
    for ident, seq in records:
        lines.append(f">{ident} desc")
        lines.extend(seq[i : i + width] for i in range(0, len(seq), width))
    path = write(tmp_path / "rt.fa", "\n".join(lines) + "\n", gz=gz)
    items = read(path)
    assert [(r.id, r.sequence) for r in items if isinstance(r, Record)] == records
    assert [r.index for r in items] == list(range(1, len(records) + 1))


# --- hostile and awkward files (found in review) --------------------------------------------------


def test_unclosed_quote_does_not_swallow_the_rest(tmp_path: Path) -> None:
    rows = "".join(f"r{i},ACGT\n" for i in range(1, 501))
    path = write(tmp_path / "x.csv", 'id,sequence\nr0,"ACGT\n' + rows)
    items = read(path)
    assert len(good(items)) == 500
    assert bad(items) == [
        'record 1, line 2: line 2 opens a quote (") that no line within 100 closes; close the '
        "quote or remove it. The lines after it were read as rows."
    ]


def test_quote_closed_on_a_later_line_is_one_row(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", 'id,sequence,note\na,ACGT,"x\ny\nz"\nb,GG,w\n')
    assert good(read(path)) == [(1, 2, "a", "ACGT"), (2, 5, "b", "GG")]


@pytest.mark.parametrize("suffix", ["txt", "csv"])
def test_old_mac_line_endings(tmp_path: Path, suffix: str) -> None:
    body = "sequence\rACGT\rGGCC\r" if suffix == "txt" else "id,sequence\ra,ACGT\rb,GGCC\r"
    items = read(write(tmp_path / f"x.{suffix}", body))
    assert [r.sequence for r in items if isinstance(r, Record)] == ["ACGT", "GGCC"]
    assert [r.line for r in items] == [2, 3]


def test_stray_carriage_return_inside_a_row(tmp_path: Path) -> None:
    items = read(write(tmp_path / "x.csv", "id,sequence\na,AC\rGT\nb,GG\n"))
    assert good(items) == [(2, 3, "b", "GG")]
    assert bad(items) == [
        "record 1, line 2: the row holds a carriage return (\\r) inside a field; save the file "
        "with standard line endings (Windows or Unix) and upload it again."
    ]


@pytest.mark.parametrize(
    "content",
    ["\ufeff", "# only a comment\n", "id,sequence\n", ">\n"[:0] + "sequence\n"],
    ids=["bom-only", "comments-only", "header-only-csv", "header-only-text"],
)
def test_files_without_records_are_refused(tmp_path: Path, content: str) -> None:
    name = "x.csv" if "," in content else "x.txt"
    with pytest.raises(InvalidFile) as info:
        read(write(tmp_path / name, content))
    assert str(info.value) in (
        "file has no records: it holds only blank lines, comments or a header. Add at least one "
        "sequence.",
        "file is empty: it has no records. Upload a FASTA, CSV/TSV or one-sequence-per-line text "
        "file (optionally gzip-compressed).",
    )


def test_truncated_fasta_reports_the_record_it_cut(tmp_path: Path) -> None:
    body = "".join(f">r{i}\n{'ACGT' * 20}\n{'GGCC' * 20}\n" for i in range(5_000))
    data = gzip.compress(body.encode())
    items = read(write(tmp_path / "cut.fa.gz", data[: len(data) // 2]))
    last = items[-1]
    assert isinstance(last, BadRecord)
    records = [r for r in items if isinstance(r, Record)]
    assert last.index == len(records) + 1
    assert last.id == f"r{len(records)}"
    assert last.line == 3 * len(records) + 1
    assert [r.index for r in items] == list(range(1, len(items) + 1))


def test_header_after_a_comment_is_still_skipped(tmp_path: Path) -> None:
    assert good(read(write(tmp_path / "x.txt", "# made by hand\nsequence\nACGT\n"))) == [
        (1, 3, None, "ACGT")
    ]


def test_headerless_column_whose_first_sequence_has_a_typo(tmp_path: Path) -> None:
    items = read(write(tmp_path / "x.csv", "ACGTACGTACF\nGGGG\n"))
    assert good(items) == [(1, 1, None, "ACGTACGTACF"), (2, 2, None, "GGGG")]
    checked = list(validate_records(items, SequenceSchema()))
    assert bad(checked)[0].startswith(
        "record 1, line 1: DNA sequence is not valid DNA: position 11"
    )


def test_over_long_records_are_skipped_not_held(tmp_path: Path) -> None:
    fasta = write(tmp_path / "x.fa", ">big\n" + "ACGT\n" * 30 + ">ok\nAC\n")
    items = list(read_sequences(fasta, max_length=100))
    assert good(items) == [(2, 32, "ok", "AC")]
    assert bad(items) == [
        "record 1 (id big), line 1: line 27: the sequence is longer than 100 nt, the limit; it "
        "was skipped. Split it, or raise HELIXSERVE_MAX_SEQUENCE_LENGTH."
    ]
    text = write(tmp_path / "x.txt", "A" * 5000 + "\nACGT\n")
    items = list(read_sequences(text, max_length=100))
    assert good(items) == [(2, 2, None, "ACGT")]
    assert bad(items)[0].startswith("record 1, line 1: line 1 is longer than 1,124 bytes")


def test_caller_stream_is_left_open_and_text_streams_are_refused() -> None:
    stream = io.BytesIO(b">a\nACGT\n")
    assert good(list(read_sequences(stream))) == [(1, 1, "a", "ACGT")]
    assert not stream.closed
    with pytest.raises(InvalidFile, match=r"got a text stream; open it with 'rb'"):
        list(read_sequences(io.StringIO(">a\nACGT\n")))  # type: ignore[arg-type]
