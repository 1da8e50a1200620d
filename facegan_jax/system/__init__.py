"""The process and its devices: one-line user errors and exit codes, the device mesh, joining
multi-process runs, the XLA flags the project sets, and quiet logging. Imports nothing else of
facegan_jax."""
