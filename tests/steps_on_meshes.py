"""Trains a few steps of a config on meshes of several sizes; saves losses and parameters.

  python tests/steps_on_meshes.py OUT.npz NUM_STEPS DEVICE_COUNT [DEVICE_COUNT ...] [stylegan2]

The config is lfw_demo.py:test, or with `stylegan2` last the tiny StyleGAN2 of
tests/test_stylegan2_train.py (every regulariser on).

Run with enough virtual devices (tests/multidevice.py). Used by tests/test_parallel.py.
"""

import sys

import jax
import numpy as np

from configs import lfw_demo
from facegan_jax import input_pipeline
from facegan_jax import parallel
from facegan_jax import train


def run(config, device_count, num_steps):
  trainer = train.make_trainer(config)
  mesh = parallel.make_mesh(jax.devices()[:device_count])
  images = input_pipeline.load_images(config)
  init, step_fn, _ = train.compile_functions(trainer, mesh, images.shape[1:])
  state = init(jax.random.key(config.seed))
  batches = input_pipeline.host_batches(images, seed=config.seed, start_step=0,
                                        batch_size=config.train.batch_size)
  losses = []
  for _ in range(num_steps):
    state, metrics = step_fn(state, parallel.host_batch_to_global(next(batches), mesh))
    losses.append([float(metrics[k]) for k in ('d_loss', 'g_loss', 'd_real', 'd_fake')])
  params = jax.tree_util.tree_leaves((state.g_params, state.d_params, state.g_batch_stats))
  return np.array(losses), np.concatenate([np.ravel(p) for p in params])


def main(out, num_steps, *device_counts):
  if device_counts[-1] == 'stylegan2':
    from tests import test_stylegan2_train  # pylint: disable=import-outside-toplevel
    config, device_counts = test_stylegan2_train.tiny_config(), device_counts[:-1]
  else:
    config = lfw_demo.get_config('test')
  results = {}
  for count in map(int, device_counts):
    results[f'losses_{count}'], results[f'params_{count}'] = run(config, count, int(num_steps))
  np.savez(out, **results)


if __name__ == '__main__':
  main(*sys.argv[1:])
