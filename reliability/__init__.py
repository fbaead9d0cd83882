"""helixserve's reliability suite: load, overload, soak and shutdown (``reliability.load``),
fuzzing (``reliability.fuzz``). Short versions run in ``make test``; long ones on demand."""
