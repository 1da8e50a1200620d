"""Traced programs kept beside the persistent compilation cache, so a warm start skips tracing.

JAX's persistent cache keys an executable by its lowered program, so even a warm start first
traces and lowers each function in Python: seconds for StyleGAN2's step with R1 and the path
length. `compile_program` keeps the lowered program itself (jax.export's serialized StableHLO) in
CACHE_DIR/traced, under a key of everything the trace reads: the source of facegan_jax and
configs, the versions of the libraries that run in it and the backend's, JAX's settings, the
caller's description of the function (the run's config, static arguments) and the inputs'
shapes, dtypes and shardings. A process with the same key deserializes the program instead of
tracing it, then compiles it, which the persistent cache serves.

Cold or warm, with the cache or without, the executable is compiled from an exported program
(`jax.jit(exported.call)`), never from the function directly, so it is the same program every
time and results do not depend on the cache (tests/test_compile_cache.py).
"""

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
from typing import Any

import jax
import jax.extend
from absl import logging
from etils import epath
from jax import export

import configs
import facegan_jax

SUBDIRECTORY = 'traced'
MAX_ENTRIES = 256  # beyond this many programs (0.1-1 MB each), the oldest written are removed
HIT, MISS = '/facegan_jax/traced_programs/hits', '/facegan_jax/traced_programs/misses'
LIBRARIES = ('jax', 'jaxlib', 'flax', 'optax', 'numpy', 'ml_dtypes')


@functools.cache
def source_digest() -> str:
  """sha256 of every Python file of the facegan_jax and configs packages (names and bytes)."""
  digest = hashlib.sha256()
  for package in (facegan_jax, configs):
    root = os.path.dirname(package.__file__)
    for folder, subfolders, files in sorted(os.walk(root)):
      subfolders.sort()
      for name in sorted(files):
        if name.endswith('.py'):
          path = os.path.join(folder, name)
          digest.update(os.path.relpath(path, root).encode() + b'\0')
          with open(path, 'rb') as f:
            digest.update(f.read() + b'\0')
  return digest.hexdigest()


def _spec(leaf) -> list[str]:
  """A leaf's shape, dtype and sharding, with the devices in their mesh's order."""
  mesh = getattr(leaf.sharding, 'mesh', None)
  devices = [] if mesh is None else mesh.device_ids.ravel().tolist()
  return [str(leaf.shape), str(leaf.dtype), repr(leaf.sharding), str(devices)]


def program_key(description: Any, arg_specs, out_shardings, donate_argnums) -> str:
  """The hex key of a program: `description` (JSON-able: what the function computes beyond its
  code, e.g. the run's config and static arguments) and everything else the trace reads."""
  parts = {
      'description': description,
      'source': source_digest(),
      'libraries': {name: importlib.metadata.version(name) for name in LIBRARIES},
      'backend': [jax.default_backend(), jax.extend.backend.get_backend().platform_version,
                  jax.process_count()],
      'jax_config': sorted((name, repr(value)) for name, value in jax.config.values.items()
                           if 'cache' not in name),
      'inputs': [str(jax.tree.structure(arg_specs))] + [
          _spec(leaf) for leaf in jax.tree.leaves(arg_specs)],
      'outputs': repr(out_shardings),
      'donated': list(donate_argnums),
  }
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def directory() -> str | None:
  """CACHE_DIR/traced of the persistent compilation cache (compile_cache.enable); None if it is
  off."""
  cache = jax.config.jax_compilation_cache_dir
  if not (jax.config.jax_enable_compilation_cache and cache):
    return None
  return f"{cache.rstrip('/')}/{SUBDIRECTORY}"


def _load(path: str) -> export.Exported | None:
  try:
    return export.deserialize(bytearray(epath.Path(path).read_bytes()))
  except FileNotFoundError:
    return None
  except Exception as error:  # pylint: disable=broad-except  (a damaged entry is traced anew)
    logging.warning('Traced program %s could not be read (%s); tracing it again.', path, error)
    return None


def _remove_oldest(folder: str):
  """Removes the oldest written entries beyond MAX_ENTRIES (others may be removing them too;
  files being written, '.NAME.PID', are left alone)."""
  entries = []
  for entry in os.scandir(folder):
    if entry.name.startswith('.'):
      continue
    with contextlib.suppress(FileNotFoundError):
      entries.append((entry.stat().st_mtime, entry.path))
  for _, path in sorted(entries)[:max(len(entries) - MAX_ENTRIES, 0)]:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def _store(folder: str, name: str, exported: export.Exported):
  """Writes the program (process 0 only), whole or not at all, keeping MAX_ENTRIES."""
  if jax.process_index() != 0:
    return
  try:
    if folder.startswith('gs://'):  # an object appears whole
      epath.Path(f'{folder}/{name}').write_bytes(exported.serialize())
      return
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f'.{name}.{os.getpid()}')
    with open(partial, 'wb') as f:
      f.write(exported.serialize())
    os.replace(partial, os.path.join(folder, name))
    _remove_oldest(folder)
  except OSError as error:  # the cache only saves time
    logging.warning('Traced program %s/%s could not be written (%s).', folder, name, error)


def compile_program(function, arg_specs: tuple, *, description: Any, out_shardings,
                    donate_argnums: tuple[int, ...] = ()) -> jax.stages.Compiled:
  """`function` jitted with `out_shardings` and `donate_argnums`, compiled for `arg_specs`
  (jax.ShapeDtypeStruct with shardings) through its exported program, read from the cache when
  its key (`program_key`) is there, else traced and stored.

  The function's inputs and outputs are pytrees of lists, tuples and dicts of arrays (no key
  arrays: pass jax.random.key_data). `description` must name whatever else the trace reads
  beyond facegan_jax's source (the run's config, static arguments).
  """
  folder = directory()
  name = program_key(description, arg_specs, out_shardings, donate_argnums)
  exported = None
  if folder:
    exported = _load(f'{folder}/{name}')
    jax.monitoring.record_event(HIT if exported else MISS)
  if exported is None:
    jitted = jax.jit(function, out_shardings=out_shardings, donate_argnums=donate_argnums)
    exported = export.export(jitted)(*arg_specs)
    if folder:
      _store(folder, name, exported)
  runner = jax.jit(exported.call, out_shardings=out_shardings, donate_argnums=donate_argnums)
  return runner.lower(*arg_specs).compile()
