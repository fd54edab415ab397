"""jetjobs benchmarks: `python -m bench <scenario> [--runs N] [--out FILE]`.

Each scenario starts its own servers (the embedded nats-server and PostgreSQL,
like the tests), runs the workload `--runs` times, prints a table and writes
JSON with the machine, versions, parameters, per-run values, medians and spread.

A scenario is a module with `run(args) -> dict` (sync or async) and optionally
`add_arguments(parser)`; `bench.scenarios` lists them. The dict is either the
shared report shape (`{"parameters": {...}, "metrics": {name: {"unit": ...,
"values": [...]}}}`, see `bench.report`) or any JSON-able dict, printed as is.
"""
