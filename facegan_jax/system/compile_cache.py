"""JAX's persistent compilation cache for every command, and a count of what it served.

A program's key is JAX's own (the computation, the compile options and XLA flags, the backend
and jax/jaxlib versions), so a cached executable is the one XLA would have compiled: results
with and without the cache are bit-identical (tests/test_compile_cache.py).
"""

import os

import jax
from absl import flags
from absl import logging

from facegan_jax.system import traced_programs
from facegan_jax.system.errors import UserError

AUTO, OFF = 'auto', ('', 'off')
LOCAL_DEFAULT = '~/.cache/facegan_jax/xla'
IN_GCS_WORKDIR = 'compilation_cache'  # a gs:// workdir's cache: preempted VMs start empty
# In LOCAL_DEFAULT, least recently used programs are evicted beyond this (the demos' programs
# take 5-40 MB each). Other directories keep JAX's default, no eviction: JAX's eviction needs an
# access-time file beside every entry, which processes without a size limit do not write, so a
# limit on a directory shared with them fails every write.
MAX_BYTES = 4 * 2**30
_HIT, _MISS = '/jax/compilation_cache/cache_hits', '/jax/compilation_cache/cache_misses'


def define_flag():
  """--compilation_cache for commands without a config (sample, evaluate, ...)."""
  flags.DEFINE_string('compilation_cache', AUTO, 'Directory of the persistent XLA compilation '
                      f"cache; '{AUTO}': $JAX_COMPILATION_CACHE_DIR if set, else "
                      f"{LOCAL_DEFAULT} (WORKDIR/{IN_GCS_WORKDIR} for a gs:// workdir); "
                      "'off' compiles afresh.")


def _is_gcs(path: str) -> bool:
  return path.startswith('gs://')


def resolve(setting: str, workdir: str) -> str | None:
  """The cache directory that `setting` (config.compilation_cache or --compilation_cache)
  names for a run in `workdir`; None when it is off."""
  if setting in OFF:
    return None
  if setting != AUTO:
    return setting
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return os.environ['JAX_COMPILATION_CACHE_DIR']
  if _is_gcs(workdir):
    return f"{workdir.rstrip('/')}/{IN_GCS_WORKDIR}"
  return LOCAL_DEFAULT


def enable(setting: str, workdir: str) -> str | None:
  """Turns the persistent cache on in `resolve(setting, workdir)` (or off); returns the
  directory. Call before the first compilation: JAX opens the cache once."""
  directory = resolve(setting, workdir)
  if directory is None:
    jax.config.update('jax_enable_compilation_cache', False)
    logging.info('Persistent compilation cache: off')
    return None
  if not _is_gcs(directory):
    directory = os.path.abspath(os.path.expanduser(directory))
    try:
      os.makedirs(directory, exist_ok=True)
    except OSError as error:
      raise UserError(f'compilation cache {directory} cannot be used ({error.strerror}); set '
                      "config.compilation_cache (or --compilation_cache) to a directory you can "
                      "write to, or to 'off'.") from error
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', directory)
  # Every program, however quick to compile: a warm start then compiles nothing at all.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  if directory == os.path.expanduser(LOCAL_DEFAULT):
    jax.config.update('jax_compilation_cache_max_size', MAX_BYTES)
  logging.info('Persistent compilation cache: %s', directory)
  return directory


class CacheCount:
  """Counts the persistent cache's hits and misses while it is entered, of executables and of
  traced programs (`traced_programs`)."""

  def __init__(self):
    self.hits = self.misses = self.traced_hits = self.traced_misses = 0

  def _listen(self, event: str, **_):
    if event == _HIT:
      self.hits += 1
    elif event == _MISS:
      self.misses += 1
    elif event == traced_programs.HIT:
      self.traced_hits += 1
    elif event == traced_programs.MISS:
      self.traced_misses += 1

  def __enter__(self):
    jax.monitoring.register_event_listener(self._listen)
    return self

  def __exit__(self, *_):
    jax.monitoring.unregister_event_listener(self._listen)

  def describe(self) -> str:
    """'from the persistent compilation cache' (nothing compiled, nothing traced that the cache
    keeps), or how many programs were compiled and traced."""
    if self.hits and not self.misses and not self.traced_misses:
      return 'from the persistent compilation cache'
    counts = []
    if self.hits or self.misses:
      counts.append(f'{self.misses} program(s) compiled, {self.hits} from the cache')
    if self.traced_hits or self.traced_misses:
      counts.append(f'{self.traced_misses} traced, {self.traced_hits} read traced from the cache')
    return f"compiled ({'; '.join(counts) or 'the persistent cache is off'})"
