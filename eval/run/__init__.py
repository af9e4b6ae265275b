"""Running a benchmark: the run's spec, the runner, records, the run-directory lock,
provenance, progress display and sweeps."""
