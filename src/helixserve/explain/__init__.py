"""Explain layer: in-silico mutagenesis, variant effects and sequence design on the ONNX
Predictor (no torch: it runs inside the server). Imports runtime, store and inputs only."""
