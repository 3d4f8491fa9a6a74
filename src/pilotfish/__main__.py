"""`python -m pilotfish` is the `pilotfish` command."""

from pilotfish.cli.main import main

main()
