"""Request and response bodies of the explain routes for long sequences and VCF files (the rest
are in :mod:`helixserve.serving.schemas`): declared once, read by the routes, ``/openapi.json``
and the schemathesis contract."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from helixserve.serving.schemas import ComputedBy


class OcclusionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequence: str = Field(description="one DNA sequence, any length the model takes")
    block: int | None = Field(
        default=None, ge=1, description="block size in nt; default: at most 200 blocks"
    )
    target: str | None = Field(default=None, description="class or label to explain")
    precision: Literal["auto", "fp32", "int8"] = Field(
        default="auto", description="as for /explain (docs/explain.md)"
    )


class OcclusionResponse(BaseModel):
    model: str
    version: int = Field(description="the version asked for")
    sequence: str
    score: float = Field(description="the unchanged sequence's score")
    target: str | None
    block: int
    fill: Literal["N", "complement"] = Field(
        description="what replaced each block: N, or its complement for a model without N"
    )
    starts: list[int] = Field(description="0-based first position of each block")
    effects: list[float] = Field(description="score change when the block is replaced")
    importance: list[float] = Field(description="per position: |effect| of its block")
    sequences: int = Field(description="sequences the model scored (the cost)")
    computed_by: ComputedBy


class VcfEffectOut(BaseModel):
    index: int = Field(description="1-based record number among the VCF's records")
    line: int
    chrom: str
    pos: int
    id: str
    ref: str
    alt: str
    window_start: int = Field(description="1-based first base of the REF window on the contig")
    window_end: int
    ref_score: float
    alt_score: float
    effect: float = Field(description="ALT score - REF score")
    effect_forward: float | None = None
    effect_reverse: float | None = None
    target: str | None = None


class VcfErrorOut(BaseModel):
    index: int
    line: int
    chrom: str | None
    pos: int | None
    id: str | None
    ref: str | None
    alt: str | None
    reason: str = Field(description="unknown_contig, off_contig, ref_mismatch, no_alt, ...")
    message: str


class VcfResponse(BaseModel):
    model: str
    version: int
    records: int
    scored: int
    refused: int
    window: str
    strands: str
    effects: list[VcfEffectOut]
    errors: list[VcfErrorOut]


class MotifsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequences: list[str] = Field(
        min_length=1, max_length=2000, description="DNA sequences; bad ones are refused, listed"
    )
    width: int = Field(default=12, ge=4, le=30, description="window width in nt")
    top: int = Field(default=3, ge=1, le=10, description="motifs to report")
    jaspar: bool = Field(default=True, description="match each motif against JASPAR CORE")
    target: str | None = Field(default=None, description="class or label to explain")


class JasparOut(BaseModel):
    matrix_id: str
    name: str
    score: float
    offset: int
    strand: Literal["+", "-"]


class MotifOut(BaseModel):
    source: str
    consensus: str
    support: int
    information_bits: float
    frequencies: list[list[float]] = Field(description="width x 4 (A, C, G, T)")
    jaspar: list[JasparOut]


class RefusedSequence(BaseModel):
    index: int = Field(description="0-based, as sent")
    message: str


class MotifsResponse(BaseModel):
    id: str | None = Field(description="the discovery's id (background runs); null: answered now")
    model: str
    version: int
    status: Literal["running", "done", "failed"]
    done: int = Field(description="sequences explained so far")
    total: int
    sequences: int
    refused: list[RefusedSequence]
    width: int
    top: int
    motifs: list[MotifOut] | None = None
    error: str | None = None
