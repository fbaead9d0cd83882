"""Pydantic models of request and response bodies: the contract of every route, declared once.

Contract:
- Request bodies of the domain API are :class:`Contract` models: :meth:`Contract.read` decodes
  the raw bytes once (orjson) and validates them once; a body that breaks the contract raises
  :class:`~helixserve.errors.RequestError` with helixserve's own message (what was wrong, an
  example of a right body), e.g. ``"inputs" is empty; send at least one input.`` (400) or
  ``"inputs" has 10,001 items; the limit is 10,000 ...`` (413). The routes (FastAPI and the
  generated fast path of :mod:`helixserve.serving.app`) get the parsed model through
  :meth:`Contract.from_request`; nothing re-reads the raw bytes.
- A predict request's items are checked here only for the envelope (a list of 1 to
  :data:`MAX_ITEMS`); whether each item is a valid sequence, row or image is the inputs layer's
  business (per-item errors, as everywhere else). Their documented schema is
  ``str | dict[str, number | str | null]``.
- Results reuse the runtime's :class:`~helixserve.runtime.predictor.Prediction`; the other
  models describe responses for ``/openapi.json``, ``/docs`` and the schemathesis contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails
from starlette.requests import Request

from helixserve.error_table import TABLE
from helixserve.errors import RequestError, RequestTooLarge
from helixserve.runtime.predictor import Prediction

Number = float | int
MAX_ITEMS = 10_000
MAX_VARIANTS = 10_000  # variants per request (API and the variants page)


class Status(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    models: int
    store: str
    loaded_at: str | None = None
    reason: str | None = None
    load_errors: dict[str, str] | None = None


class ItemErrorOut(BaseModel):
    index: int | None = Field(description="0-based input index (files: 1-based record number)")
    field: str | None = Field(description="JSON path of the bad value, e.g. inputs[2]")
    position: int | None = Field(description="1-based position of the bad character")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ItemErrorOut] | None = None


class OipError(BaseModel):
    error: str


_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {  # every status of the error table
    code: _PROBLEM for code in sorted({row.status for row in TABLE.values()})
}
OIP_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OipError} for code in sorted({row.oip for row in TABLE.values()})
}


def parse_json(body: bytes, example: str) -> Any:
    """JSON-decode a request body, or raise a 400 that says so."""
    if not body:
        raise RequestError(f"the request body is empty; send JSON like {example}.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise RequestError(
            f"the request body is not valid JSON ({err}); send JSON like {example}."
        ) from None


class Contract(BaseModel):
    """A JSON request body; see the module contract."""

    example: ClassVar[str] = "{}"

    @classmethod
    def read(cls, body: bytes) -> Self:
        """The body parsed and validated, or :class:`RequestError` with helixserve's message."""
        data = parse_json(body, cls.example)
        try:  # ``model_validate`` without its wrapper: this runs on every prediction
            contract: Self = cls.__pydantic_validator__.validate_python(data)
            return contract
        except ValidationError as err:
            raise cls.refusal(err.errors()) from None

    @classmethod
    async def from_request(cls, request: Request) -> Self:
        """The route dependency: the request's body as this contract."""
        return cls.read(await request.body())

    @classmethod
    def refusal(cls, errors: list[ErrorDetails]) -> RequestError:
        """The message for a body that breaks the contract (the first error, with its place)."""
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"])
        return RequestError(f"{where}: {first['msg']}" if where else first["msg"])


Item = Annotated[
    Any, WithJsonSchema(TypeAdapter(str | dict[str, Number | str | None]).json_schema())
]


class PredictRequest(Contract):
    model_config = ConfigDict(extra="forbid")
    example: ClassVar[str] = '{"inputs": ["ACGT..."]}'

    inputs: list[Item] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="DNA/RNA sequences as strings, tabular rows as objects (feature -> value), "
        "or images as base64 strings",
        examples=[["ACGTACGTAC"]],
    )

    @classmethod
    def refusal(cls, errors: list[ErrorDetails]) -> RequestError:
        kinds = {e["type"]: e for e in errors}
        ex = cls.example
        if "model_type" in kinds or "missing" in kinds:
            return RequestError(
                f'the request body must be a JSON object with an "inputs" list, like {ex}.'
            )
        if "list_type" in kinds:
            got = type(kinds["list_type"]["input"]).__name__
            return RequestError(f'"inputs" must be a list, got {got}; like {ex}.')
        if "too_short" in kinds:
            return RequestError('"inputs" is empty; send at least one input.')
        if "too_long" in kinds:
            return RequestTooLarge(
                f'"inputs" has {len(kinds["too_long"]["input"]):,} items; the limit is '
                f"{MAX_ITEMS:,} per request. Split the request, or use predict-file or "
                "`helixserve predict` for big files."
            )
        extra = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if extra:
            return RequestError(
                f'unknown field {extra[0]!r} in the request body; only "inputs" is accepted.'
            )
        return super().refusal(errors)


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction | None] = Field(description="null where the input failed")
    errors: list[ItemErrorOut]


@dataclass(frozen=True, kw_only=True)
class FilePrediction(Prediction):
    index: int
    id: str | None
    line: int


class FileError(ItemErrorOut):
    id: str | None
    line: int | None


class FileResponse(BaseModel):
    model: str
    version: int
    file: str
    records: int
    predicted: int
    failed: int
    predictions: list[FilePrediction]
    errors: list[FileError]


class SeedRequest(Contract):
    """The seed article's body. Its refusals are answered as plain text (see the seed route)."""

    example: ClassVar[str] = '{"dnasequence": "ACGT..."}'

    dnasequence: Annotated[Any, WithJsonSchema({"type": "string"})] = Field(
        examples=["ACGT" * 12 + "AC"]
    )

    @classmethod
    def refusal(cls, errors: list[ErrorDetails]) -> RequestError:
        return RequestError(
            f'the request body must be JSON with a "dnasequence" field, like {cls.example}.'
        )

    @classmethod
    async def or_refusal(cls, request: Request) -> SeedRequest | RequestError:
        """The body, or the refusal to answer as text (the seed client reads text)."""
        try:
            return cls.read(await request.body())
        except RequestError as err:
            return err


class HeadlineOut(BaseModel):
    """The figure a model is judged by, as the web pages and ``helixserve models list`` show it."""

    metric: str = Field(description="key of metrics, e.g. r2 or isolate_accuracy")
    value: float | None = Field(description="its value; null when the bundle lacks the metric")
    meaning: str = Field(description="what the figure measures, on which rows")
    text: str = Field(examples=["r2 0.596"], description="metric and value as shown")
    ood_metric: str | None = Field(description="the figure on data unlike the training data")
    ood_value: float | None
    ood_meaning: str | None
    ood_text: str | None = Field(examples=["external_accuracy 0.750"])


class ModelSummary(BaseModel):
    name: str
    default_version: int
    task: str
    description: str
    input_kind: str
    versions: list[int]
    aliases: dict[str, int]
    labels: list[str] | None
    metrics: dict[str, float]
    headline: HeadlineOut


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    version: int
    manifest: dict[str, Any]
    card: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, str] | None = None


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferOutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequestBody(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput]
    outputs: list[InferOutputRequest] | None = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutput]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequence: str = Field(description="one DNA sequence", examples=["CGACCGAACTCC" + "A" * 38])
    target: str | None = Field(default=None, description="class to explain (multiclass)")
    precision: Literal["auto", "fp32", "int8"] = Field(
        default="auto",
        description="auto: the version's int8 sibling when its measured ISM agreement passes "
        "the bar (0.99), else the version itself; fp32: the version itself; int8: the int8 "
        "sibling or an error (docs/explain.md)",
    )
    region: tuple[int, int] | None = Field(
        default=None,
        description="[start, end], 1-based and inclusive, at most 500 nt: ISM of these positions "
        "only (long sequences); default: every position (sequences up to 5,000 nt)",
    )


class ComputedBy(BaseModel):
    version: int = Field(description="the version whose ISM effects these are")
    precision: Literal["fp32", "int8"]
    ism_spearman: float | None = Field(
        description="int8: mean per-sequence Spearman of its ISM effects against its fp32 "
        "parent's, measured when it was made"
    )
    ism_sequences: int | None = Field(description="sequences that figure was measured on")


class ExplainResponse(BaseModel):
    model: str
    version: int = Field(description="the version asked for")
    sequence: str
    score: float = Field(description="the unchanged sequence's score, by computed_by's version")
    target: str | None
    alphabet: str
    effects: list[list[float]] = Field(description="L x 4: score change per substitution")
    importance: list[float] = Field(description="mean |effect| per position")
    region: tuple[int, int] | None = Field(
        default=None, description="the positions explained (sequence, effects: those only)"
    )
    computed_by: ComputedBy


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=1, description="1-based position of ref")
    ref: str = Field(
        min_length=1, description="the bases at position; - for none (an insertion before it)"
    )
    alt: str = Field(description="the bases that replace ref; - for none (a deletion)")


class VariantsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequence: str
    variants: list[VariantIn] = Field(min_length=1, max_length=MAX_VARIANTS)
    target: str | None = None


class VariantsResponse(BaseModel):
    model: str
    version: int
    score: float
    effects: list[float | None] = Field(
        description="each variant's score change, in the order sent; null for a refused one"
    )
    errors: list[ItemErrorOut] = Field(
        default_factory=list, description="the refused variants (index: 0-based, as sent)"
    )


class DesignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str
    goal: str = Field(default="max", description="max, min or target=<number>")
    rounds: int = Field(default=10, ge=1, le=500)
    fixed: list[int] = Field(default_factory=list, description="1-based positions never changed")
    forbid: list[str] = Field(default_factory=list, description="motifs that may not appear")
    gc: tuple[float, float] = (0.0, 1.0)
    target: str | None = None


class DesignStep(BaseModel):
    round: int
    sequence: str
    score: float
    change: str | None


class DesignResponse(BaseModel):
    model: str
    version: int
    steps: list[DesignStep]
