"""XLA flags that the project sets itself, before JAX initialises a backend."""

import os

from absl import logging

# Deterministic reductions and convolution algorithms on GPU (slightly slower); CPU and TPU
# builds know the flag and are deterministic anyway.
GPU_DETERMINISM = ('--xla_gpu_deterministic_ops=true',)


def add_xla_flags(flags, reason: str, environ=None):
  """Appends `flags` to XLA_FLAGS, leaving any flag the user already set there as it is.

  Must run before the first JAX computation: XLA reads XLA_FLAGS once, at backend start.
  """
  environ = os.environ if environ is None else environ
  current = environ.get('XLA_FLAGS', '').split()
  names = {flag.split('=')[0] for flag in current}
  added = [flag for flag in flags if flag.split('=')[0] not in names]
  if added:
    environ['XLA_FLAGS'] = ' '.join(current + added)
    logging.info('%s: XLA_FLAGS += %s', reason, ' '.join(added))
