"""Trains a few steps of a config on meshes of several sizes; saves losses and parameters.

  python tests/helpers/steps_on_meshes.py OUT.npz NUM_STEPS VARIANT DEVICE_COUNT [DEVICE_COUNT ...]

VARIANT: of configs/lfw_demo.py, e.g. 'test', 'sngan_test', 'stylegan2_test', 'r3gan_test' or
'ada_test'; 'VARIANT@ZIP' trains it conditionally on the labelled dataset zip ZIP (its
dataset.json's class ids, one-hot).

Run with enough virtual devices (tests/helpers/multidevice.py): `train_on_meshes` does, for the
tests of every family.
"""

import json
import os
import sys
import zipfile

import jax
import numpy as np

from configs import lfw_demo
from facegan_jax.data import image_sources
from facegan_jax.data import input_pipeline
from facegan_jax.system import parallel
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import multidevice


# The metrics saved per step (as columns of `losses`); ADA's only where the config uses its pipe.
LOGGED = ('d_loss', 'g_loss', 'd_real', 'd_fake', 'augment_p', 'ada_rt')


def run(config, device_count, num_steps):
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh(jax.devices()[:device_count])
  dataset = image_sources.load_dataset(config)
  init, step_fn, _ = step_lib.compile_functions(trainer, mesh, dataset.images.shape[1:])
  state = init(jax.random.key(config.seed))
  batches = input_pipeline.host_batches(dataset.images, seed=config.seed, start_step=0,
                                        batch_size=config.train.batch_size,
                                        d_steps=trainer.real_batches, labels=dataset.labels)
  losses = []
  for step in range(num_steps):
    batch = jax.tree.map(lambda rows: parallel.host_batch_to_global(rows, mesh), next(batches))
    state, metrics = step_fn(state, batch, step_lib.lazy_phases(trainer, step))
    losses.append([float(metrics[k]) for k in LOGGED if k in metrics])
  leaves = jax.tree_util.tree_leaves_with_path(
      {'g': state.g_params, 'd': state.d_params, 'g_stats': state.g_batch_stats,
       'd_stats': state.d_batch_stats})
  params = np.concatenate([np.ravel(leaf) for _, leaf in leaves])
  round_off = np.concatenate([np.full(leaf.size, is_round_off(path)) for path, leaf in leaves])
  return np.array(losses), params, round_off


def is_round_off(path):
  """Whether the leaf at `path` is one whose gradient is 0 up to round-off, which Adam scales to
  +-lr steps (so devices differ by up to 2 lr a step): G's biases in front of a BatchNorm (SNGAN's
  dense layer and its blocks' convolutions; DCGAN has none) and G's running means (behind
  them in SNGAN)."""
  names = [key.key for key in path]
  return ((names[0] == 'g' and names[-1] == 'bias' and (len(names) == 4 or names[1] == 'l1'))
          or (names[0] == 'g_stats' and names[-1] == 'mean'))


def config_of(variant):
  """The lfw_demo config of VARIANT or VARIANT@ZIP (module docstring)."""
  name, _, labelled_zip = variant.partition('@')
  config = lfw_demo.get_config(name)
  if labelled_zip:
    with zipfile.ZipFile(labelled_zip) as archive:
      classes = [label for _, label in json.loads(archive.read('dataset.json'))['labels']]
    config.data.update(source='zip', path=labelled_zip, crop=0, labels='dataset_json',
                       cache_dir=os.path.join(os.path.dirname(labelled_zip), 'cache'))
    config.model.c_dim = max(classes) + 1
  return config


def train_on_meshes(tmp_path, num_steps: int, variant: str, counts=(1, 2, 8), timeout=600):
  """This script's runs of `variant` on meshes of `counts` devices, in a process with enough
  virtual devices: {'losses_N', 'params_N', 'round_off'} arrays."""
  out = tmp_path / 'runs.npz'
  result = multidevice.run_python(['tests/helpers/steps_on_meshes.py', str(out), str(num_steps),
                                   variant, *map(str, counts)], devices=max(counts),
                                  timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return np.load(out)


def assert_meshes_agree(runs, counts=(2, 8), with_params=True):
  """The losses (and parameters) of each count's run equal the 1-device run's to float32
  round-off of the cross-device means."""
  for count in counts:
    np.testing.assert_allclose(runs[f'losses_{count}'], runs['losses_1'], rtol=2e-5, atol=2e-6)
    if with_params:
      np.testing.assert_allclose(runs[f'params_{count}'], runs['params_1'], rtol=1e-4,
                                 atol=2e-6)


def main(out, num_steps, variant, *device_counts):
  config = config_of(variant)
  results = {}
  for count in map(int, device_counts):
    results[f'losses_{count}'], results[f'params_{count}'], results['round_off'] = run(
        config, count, int(num_steps))
  np.savez(out, **results)


if __name__ == '__main__':
  main(*sys.argv[1:])
