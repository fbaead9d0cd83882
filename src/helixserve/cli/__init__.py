"""The command-line edge: the typer app in :mod:`helixserve.cli.app` and its sub-commands."""
