"""pilotfish benchmarks: `python -m bench --help`. They print numbers; no test asserts a timing."""
