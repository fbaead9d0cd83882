"""The training layer: recipes that fit models on real data and publish them as bundles.

It carries the heavy dependencies (torch, scikit-learn, skl2onnx, matplotlib, optuna: the
``train`` extra); nothing in serving, batch or explain imports it.

- :mod:`~helixserve.training.data` — reading labelled sequence and tabular files; splits.
- :mod:`~helixserve.training.nets` — the PyTorch architectures.
- :mod:`~helixserve.training.loop` — the training loop (Adam, early stopping, history).
- :mod:`~helixserve.training.recipes` — estimator-like recipes (fit / predict / export).
- :mod:`~helixserve.training.metrics`, :mod:`~helixserve.training.plots` — evaluation.
- :mod:`~helixserve.training.publish` — ONNX parity check, card, bundle, Predictor check.
"""
