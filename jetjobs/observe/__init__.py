"""Observing jetjobs from outside: the metrics/health HTTP endpoint, and the
`job logs`, `events` and `status` commands."""
