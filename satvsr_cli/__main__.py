"""`python -m satvsr_cli` runs the command-line interface."""

from satvsr_cli.cli import main

main()
