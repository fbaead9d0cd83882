"""The inputs layer: the one place that knows what a valid sequence, file, row or image is.

Every entry point (REST, gRPC, web UI, CSV upload, batch, training) validates through these
functions, so one bad input gets the same message everywhere. Nothing here imports from a higher
layer. Submodules state their own contracts:

- :mod:`~helixserve.inputs.sequence` — DNA/RNA normalisation and validation (SequenceSchema).
- :mod:`~helixserve.inputs.encoding` — one-hot (N, 4, L) and token encoders, and decoders.
- :mod:`~helixserve.inputs.readers` — streaming FASTA / CSV / TSV / text readers with locations.
- :mod:`~helixserve.inputs.tabular` — named numeric features with ranges (TabularSchema).
- :mod:`~helixserve.inputs.images` — PNG/JPEG/TIFF decoding with size and bomb limits.
"""

from helixserve.inputs.encoding import (
    encode_batch,
    one_hot_decode,
    one_hot_encode,
    token_decode,
    token_encode,
)
from helixserve.inputs.images import ImageSchema, decode_image
from helixserve.inputs.readers import detect_format, read_sequences, validate_records
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.sequence import SequenceSchema, normalise, validate_sequence
from helixserve.inputs.tabular import (
    Feature,
    FeatureRow,
    TabularSchema,
    read_rows,
    rows_to_array,
    validate_row,
)

__all__ = [
    "BadRecord",
    "Feature",
    "FeatureRow",
    "ImageSchema",
    "Record",
    "SequenceSchema",
    "TabularSchema",
    "decode_image",
    "detect_format",
    "encode_batch",
    "normalise",
    "one_hot_decode",
    "one_hot_encode",
    "read_rows",
    "read_sequences",
    "rows_to_array",
    "token_decode",
    "token_encode",
    "validate_records",
    "validate_row",
    "validate_sequence",
]
