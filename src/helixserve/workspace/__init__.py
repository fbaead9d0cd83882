"""The lab workspace: projects, datasets, experiments, runs.

Torch-free; see docs/design/workspace.md.
"""
