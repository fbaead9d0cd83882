"""``python -m helixserve`` runs the CLI."""

from helixserve.cli.app import main

main()
