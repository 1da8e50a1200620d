"""Fixtures shared by several test files."""

import pytest

from facegan_jax import inception

TINY = 1 / 8  # Inception width for tests: at 1 / 16 the 2-channel first layers flatten near-gray
# images to one value, so tests could not tell generators apart


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory):
  """A .npz of a randomly initialised FID Inception of width TINY."""
  path = str(tmp_path_factory.mktemp('inception') / 'tiny.npz')
  inception.save(path, inception.init_random(0, TINY))
  return path
