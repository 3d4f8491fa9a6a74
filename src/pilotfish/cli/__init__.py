"""The `pilotfish` command line: one module per command, listed once in `cli.main.COMMANDS`."""
