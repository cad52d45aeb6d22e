"""``python -m ganinv`` runs the CLI."""

from ganinv.cli.app import main

main()
