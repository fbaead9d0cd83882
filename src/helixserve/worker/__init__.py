"""The worker layer: claims the workspace's queued runs and trains them with the training layer.

``prepare`` (a run's data and options), ``progress`` (heartbeats, epochs, checkpoints),
``run`` (one run, end to end), ``local`` (the loop on one machine), ``ray_engine`` (runs as Ray
tasks on a cluster). It imports torch (through the training layer): only ``helixserve worker``
and the tests import it; ``serving`` and ``workspace`` never do (docs/design/workspace.md).
"""
