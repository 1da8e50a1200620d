"""A run's files: local and gs:// storage, the one-run-per-workdir lock, Orbax checkpoints with
their resume checks, and the metric writer (metrics.jsonl and TensorBoard)."""
