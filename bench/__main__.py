"""`python -m bench [--tier generation|convergence|memory|datapath|all] [--quick] [--json PATH]`."""

from bench.cli import main

raise SystemExit(main())
