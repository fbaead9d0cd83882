"""Long-running reliability checks (``make reliability``): fuzzing, load, faults.

Each module is a command (``python -m reliability.<name>``) that runs a longer version of checks
the test suite runs briefly, and writes a JSON summary under ``reliability/results/``.
"""
