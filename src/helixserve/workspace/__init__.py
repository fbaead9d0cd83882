"""The lab workspace: projects, datasets, experiments, runs (torch-free; see docs/design/workspace.md)."""
