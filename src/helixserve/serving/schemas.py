"""Pydantic models of request and response bodies, for ``/openapi.json`` and ``/docs``.

Contract: these describe what the routes accept and answer; the hot routes parse bodies with
orjson and check them by hand (the same rules, with messages that name the field), so these
models are documentation and the schemathesis contract, not the hot path.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from helixserve.error_table import TABLE

Number = float | int


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


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[str | dict[str, Number | str | None]] = Field(
        min_length=1,
        max_length=10_000,
        description="DNA/RNA sequences as strings, tabular rows as objects (feature -> value), "
        "or images as base64 strings",
        examples=[["ACGTACGTAC"]],
    )


class Prediction(BaseModel):
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction | None] = Field(description="null where the input failed")
    errors: list[ItemErrorOut]


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


class SeedRequest(BaseModel):
    dnasequence: str = Field(examples=["ACGT" * 12 + "AC"])


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


class ExplainResponse(BaseModel):
    model: str
    version: int
    sequence: str
    score: float
    target: str | None
    alphabet: str
    effects: list[list[float]] = Field(description="L x 4: score change per substitution")
    importance: list[float] = Field(description="mean |effect| per position")


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=1, description="1-based position of ref")
    ref: str = Field(min_length=1)
    alt: str


class VariantsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequence: str
    variants: list[VariantIn] = Field(min_length=1, max_length=10_000)
    target: str | None = None


class VariantsResponse(BaseModel):
    model: str
    version: int
    score: float
    effects: list[float]


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
