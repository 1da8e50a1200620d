"""XLA flags that the project sets itself, before JAX initialises a backend."""

import importlib.metadata
import importlib.util
import os

import jax
from absl import logging

# Deterministic reductions and convolution algorithms on GPU (slightly slower); CPU and TPU
# builds know the flag and are deterministic anyway.
GPU_DETERMINISM = ('--xla_gpu_deterministic_ops=true',)

# XLA:CPU runs convolutions and matmuls on its own (Eigen) kernels instead of YNNPACK's, which
# makes the DCGAN train step faster on x86 (figures in benchmarks/README.md).
CPU_CONVOLUTIONS = (
    '--xla_cpu_experimental_ynn_fusion_type=-individual_dot,-individual_convolution',)


def runs_on_cpu(platforms=None) -> bool:
  """Whether JAX will compute on the CPU: `platforms` (default: JAX_PLATFORMS) says so, or no
  GPU/TPU plugin is installed.

  Answers without starting a backend, so that CPU-only flags can still be added.
  """
  platforms = jax.config.jax_platforms if platforms is None else platforms
  if platforms:
    return platforms.split(',')[0] == 'cpu'
  return not (importlib.metadata.entry_points(group='jax_plugins')
              or importlib.util.find_spec('jax_plugins')
              or importlib.util.find_spec('libtpu'))


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


def add_speed_flags(environ=None, platforms=None):
  """Adds the flags that the train step's speed depends on (CPU_CONVOLUTIONS on CPU only)."""
  if runs_on_cpu(platforms):
    add_xla_flags(CPU_CONVOLUTIONS, 'faster convolutions on XLA:CPU', environ)
