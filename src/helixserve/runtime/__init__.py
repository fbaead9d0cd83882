"""The runtime layer: a bundle turned into a :class:`Predictor` (ONNX Runtime + inputs layer).

- :mod:`~helixserve.runtime.predictor` — validate, encode, run, decode; per-item errors.
- :mod:`~helixserve.runtime.signature` — the model's ONNX signature checked against its manifest.
"""

from helixserve.runtime.predictor import ItemError, Prediction, Predictor, Result

__all__ = ["ItemError", "Prediction", "Predictor", "Result"]
