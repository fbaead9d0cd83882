"""Valid random inputs for a model's input schema (benchmarks, calibration, self-test examples).

Contract: :func:`sample_inputs` returns ``count`` raw inputs that pass the schema's validation,
reproducibly for a ``seed``: DNA strings of an allowed length (exactly ``length``, else up to
1,000 nt within the schema's bounds), tabular rows (mappings) with every feature in its range
(whole numbers for ``int`` features; 0..1 where a bound is open), or PNG bytes of the schema's
size and channels.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.runtime.predictor import Predictor


def sample_inputs(predictor: Predictor, count: int, seed: int = 0) -> list[Any]:
    """``count`` valid random inputs for the predictor's schema."""
    rng = np.random.default_rng(seed)
    schema = predictor.manifest.input
    if isinstance(schema, SequenceSchema):
        length = schema.length or min(schema.max_length or 1000, max(schema.min_length or 1, 1000))
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)
        return [letters[rng.integers(0, 4, length)].tobytes().decode() for _ in range(count)]
    if isinstance(schema, TabularSchema):
        rows = []
        for _ in range(count):
            row: dict[str, float] = {}
            for f in schema.features:
                low, high = f.min if f.min is not None else 0.0, f.max if f.max is not None else 1.0
                value = float(rng.uniform(low, high))
                row[f.name] = float(round(value)) if f.type == "int" else value
            rows.append(row)
        return rows
    image: ImageSchema = schema
    return [_png(rng, image) for _ in range(count)]


def _png(rng: np.random.Generator, schema: ImageSchema) -> bytes:
    shape = (schema.height, schema.width) + ((3,) if schema.channels == 3 else ())
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()
