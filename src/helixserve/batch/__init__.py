"""Batch layer: scoring big files (streaming, resumable); imports runtime, store and inputs only."""
