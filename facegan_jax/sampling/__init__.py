"""Generating from a trained generator: the run's key streams, latents, the choice of sampling
weights (EMA or not), truncation, and the generator restored from a checkpoint."""
