"""Hyper-parameter declarations: what each training recipe takes, as plain data.

Contract: :mod:`~helixserve.params.declare` is the declaration language (name, type, default,
range or choices, one-line help; one refusal format) and :mod:`~helixserve.params.recipes`
declares every recipe's parameters with it. Plain Python (no torch, numpy or scikit-learn): the
training layer checks and uses them, and the workspace, the web forms and the CLI read them,
none of which may import training. A shared module, like ``errors`` and ``settings``.
"""
