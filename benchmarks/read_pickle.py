"""Time and peak memory to read an FFHQ-1024-sized NVIDIA network pickle:

    python benchmarks/read_pickle.py [--keep=/tmp/ffhq1024_synthetic.pkl]

The file is synthetic: a snapshot {G, D, G_ema, augment_pipe: None, training_set_kwargs} in the
format of NVIDIA's pickles (tests/helpers/nvidia_pickle_writer.py: persistent objects, legacy
torch.save storages), with the config-F shapes of the published `ffhq.pkl` (1024x1024,
channel_base 32768, 8 mapping layers: G 30,370,060 parameters and 2,797,104 buffer values, D
29,012,513 parameters), the state_dict names our export gives them, random float32 values and
no module source text; a process of its own writes it. Each read runs in a fresh process
(`facegan_jax.pretrained.nvidia_pickle.read`, and `state_dicts()` of it), timed there; its peak
resident memory is resource.getrusage(RUSAGE_SELF).ru_maxrss after the read, and before it
(Python, numpy, jax and the reader imported) for comparison. This process starts them and stays
small, because Linux carries a parent's peak RSS into the ru_maxrss of the children it forks.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BUFFERS = ('resample_filter', 'noise_const', 'w_avg')
_READ = '''
import resource, sys, time
sys.path.insert(0, {root!r})
sys.modules['torch'] = None
from facegan_jax.pretrained import nvidia_pickle
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
arrays = nvidia_pickle.read({path!r}).state_dicts()
seconds = time.perf_counter() - start
print(seconds, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(arrays),
      sum(array.size for array in arrays.values()))
'''


def _module(class_name, arrays):
  from facegan_jax.pretrained import nvidia_pickle  # pylint: disable=import-outside-toplevel
  """A reader Module holding `arrays` ({dotted name: array}) as its parameters, buffers and
  nested children."""
  module = nvidia_pickle.Module.__new__(nvidia_pickle.Module)
  module.class_name = class_name
  own = {name: value for name, value in arrays.items() if '.' not in name}
  children = {}
  for name, value in arrays.items():
    if '.' in name:
      child, rest = name.split('.', 1)
      children.setdefault(child, {})[rest] = value
  module.__setstate__({
      '_parameters': {name: value for name, value in own.items() if name not in _BUFFERS},
      '_buffers': {name: value for name, value in own.items() if name in _BUFFERS},
      '_modules': {name: _module('Module', child) for name, child in children.items()},
      '_init_args': (), '_init_kwargs': {}})
  return module


def config_f_state_dicts():
  """{'G': ..., 'D': ...}: NVIDIA's state_dict names and shapes of the config-F networks at 1024,
  random float32 values (filters as they are)."""
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np
  from configs import ffhq
  from facegan_jax import models
  from facegan_jax.pretrained import export_stylegan2
  config = ffhq.get_config('stylegan2_1024')
  generator, discriminator = models.build_models(config.model)
  g_vars = jax.eval_shape(lambda: generator.init(jax.random.key(0), jnp.zeros((1, 512)),
                                                 train=False))
  d_vars = jax.eval_shape(lambda: discriminator.init(jax.random.key(0),
                                                     jnp.zeros((1, 1024, 1024, 3))))
  rng = np.random.default_rng(0)
  fill = lambda tree: jax.tree.map(
      lambda leaf: rng.standard_normal(leaf.shape, np.float32), tree)
  return {'G': export_stylegan2.state_dict('G', fill(g_vars['params']),
                                           fill(g_vars['batch_stats'])),
          'D': export_stylegan2.state_dict('D', fill(d_vars['params']))}


def write_synthetic_pickle(path):
  """Writes the synthetic pickle to `path`; returns its G and D value counts."""
  # pylint: disable=import-outside-toplevel
  from facegan_jax.pretrained import nvidia_pickle
  from tests.helpers import nvidia_pickle_writer as writer
  arrays = config_f_state_dicts()
  networks = nvidia_pickle.NetworkPickle(
      nvidia_pickle.STYLEGAN3, {'G': _module('Generator', arrays['G']),
                                'D': _module('Discriminator', arrays['D']),
                                'G_ema': _module('Generator', arrays['G'])},
      {'augment_pipe': None, 'training_set_kwargs': {'resolution': 1024}})
  with open(path, 'wb') as file:
    file.write(writer.network_pickle(networks))
  return {name: sum(value.size for value in network.values())
          for name, network in arrays.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--keep', default='', help='write the synthetic pickle here and keep it')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--write_only', default='', help=argparse.SUPPRESS)  # the writing process
  args = parser.parse_args()
  if args.write_only:
    sys.path.insert(0, ROOT)
    sizes = write_synthetic_pickle(args.write_only)
    print(f'G {sizes["G"]:,} and D {sizes["D"]:,} values')
    return
  path = args.keep or os.path.join(tempfile.mkdtemp(), 'ffhq1024_synthetic.pkl')
  start = time.perf_counter()
  written = subprocess.run([sys.executable, __file__, f'--write_only={path}'],
                           capture_output=True, text=True, check=True).stdout.strip()
  print(f'wrote {path}: {os.path.getsize(path) / 2**20:.1f} MiB, {written}, in '
        f'{time.perf_counter() - start:.1f} s')
  for _ in range(args.repeats):
    result = subprocess.run([sys.executable, '-c', _READ.format(root=ROOT, path=path)],
                            capture_output=True, text=True, check=True)
    seconds, before, after, tensors, values = result.stdout.split()
    print(f'read in {float(seconds):.2f} s; peak RSS {int(after) / 2**10:.0f} MiB (before the '
          f'read {int(before) / 2**10:.0f} MiB); {tensors} tensors, {int(values):,} values')
  if not args.keep:
    os.remove(path)


if __name__ == '__main__':
  main()
