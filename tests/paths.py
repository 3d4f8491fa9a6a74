"""Paths of test data inside the repository (CI runs on a clean checkout: nothing outside it)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFORMANCE = REPO / "tests" / "data" / "conformance"
"""Istio's public test data (Apache-2.0, see LICENSE and NOTICE.md there), from shared/conformance."""
SAMPLES = REPO / "samples"
