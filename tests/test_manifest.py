"""The manifest contract: validation messages, format versions, and save/load round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixserve.errors import InvalidName, ManifestError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import Feature, TabularSchema
from helixserve.store import FORMAT_VERSION, Manifest, OutputSchema, make_manifest, parse_manifest

FILES = {"model.onnx": b"onnx bytes", "card.md": b"# card\n"}


def base(**changes: object) -> dict[str, object]:
    manifest = make_manifest(
        FILES,
        name="m",
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
    )
    data: dict[str, object] = json.loads(manifest.to_json())
    data.update(changes)
    return data


def parse(data: dict[str, object]) -> Manifest:
    return parse_manifest(json.dumps(data).encode())


def test_round_trip_is_exact() -> None:
    manifest = parse(base())
    assert parse_manifest(manifest.to_json()) == manifest
    assert manifest.format_version == FORMAT_VERSION


def test_newer_format_is_refused_with_advice() -> None:
    with pytest.raises(ManifestError) as info:
        parse(base(format_version=FORMAT_VERSION + 1))
    assert str(info.value) == (
        f"manifest.json has manifest format {FORMAT_VERSION + 1}, newer than this helixserve "
        f"understands ({FORMAT_VERSION}); upgrade helixserve to read this model."
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"{not json",
            "manifest.json is not valid JSON (Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1)); the bundle is damaged.",
        ),
        (b"[1, 2]", "manifest.json must hold a JSON object, got list."),
    ],
)
def test_unreadable_manifest(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"version": 0}, "version: Input should be greater than or equal to 1"),
        (
            {"task": "clustering"},
            "task: Input should be 'binary', 'multiclass', 'multilabel' or 'regression'",
        ),
        ({"files": {"../model.onnx": "0" * 64}}, "files: Value error, file path '../model.onnx'"),
        ({"files": {"model.onnx": "xyz"}}, "files.model.onnx: String should match pattern"),
        ({"output": {"labels": ["a", "b", "c"]}}, "a binary model needs exactly 2 output labels"),
        ({"input": {"kind": "protein"}}, "input: Input tag 'protein' found using 'kind' does not"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse(base(**changes))
    assert str(info.value).startswith("manifest.json is not a valid manifest: ")
    assert fragment in str(info.value)


def test_unsafe_model_name_in_a_manifest() -> None:
    with pytest.raises(InvalidName):
        parse(base(name="../escape"))


schemas = st.one_of(
    st.builds(
        SequenceSchema,
        alphabet=st.sampled_from(["ACGT", "ACGTN"]),
        length=st.integers(1, 10_000),
        flank_left=st.text("ACGT", max_size=12),
    ),
    st.builds(
        TabularSchema,
        features=st.lists(
            st.builds(
                Feature,
                name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
                type=st.sampled_from(["int", "float"]),
                min=st.none() | st.floats(-1e6, 0),
                max=st.none() | st.floats(1, 1e6),
            ),
            min_size=1,
            max_size=5,
            unique_by=lambda f: f.name,
        ),
    ),
    st.builds(
        ImageSchema,
        width=st.integers(1, 4096),
        height=st.integers(1, 4096),
        channels=st.sampled_from([1, 3]),
    ),
)


@given(
    schema=schemas,
    metrics=st.dictionaries(
        st.from_regex(r"[a-z_]{1,10}", fullmatch=True), st.floats(-1e9, 1e9), max_size=4
    ),
    version=st.integers(1, 10**6),
    description=st.text(max_size=50),
)
def test_manifest_save_load_round_trip(
    schema: SequenceSchema | TabularSchema | ImageSchema,
    metrics: dict[str, float],
    version: int,
    description: str,
) -> None:
    manifest = make_manifest(
        FILES,
        name="model-1",
        version=version,
        task="regression",
        input=schema,
        metrics=metrics,
        description=description,
    )
    assert parse_manifest(manifest.to_json()) == manifest
