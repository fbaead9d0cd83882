"""Serving layer: the HTTP app (domain API, Open Inference Protocol v2, operations) and gRPC.

It imports ``runtime``, ``store`` and ``inputs`` only — never ``training`` (no torch here).
"""
