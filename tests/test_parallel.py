"""Data parallelism: 1, 2 and 8 devices compute the same training (BatchNorm over the global batch,
labels sharded with their images),
and many simulated CPU devices train to the end."""

import subprocess
import sys

import numpy as np
import pytest

from tests import test_conditional_training
from tests.helpers import multidevice
from tests.helpers import steps_on_meshes


@pytest.mark.slow
def test_one_two_and_eight_devices_give_the_same_losses_and_parameters(tmp_path):
  """A conditional DCGAN: the labels are sharded with their images, BatchNorm (conditional in G)
  takes its statistics over the global batch."""
  faces = test_conditional_training.labelled_zip(tmp_path / 'faces.zip')
  runs = steps_on_meshes.train_on_meshes(tmp_path, 4, f'test@{faces}')
  steps_on_meshes.assert_meshes_agree(runs)
  assert not np.allclose(runs['losses_1'][0], runs['losses_1'][-1])  # training moved


@pytest.mark.slow
def test_eight_cpu_devices_run_long_stretches_without_a_host_sync(tmp_path):
  """120 steps between host syncs: without a bound on the steps in flight, XLA:CPU's thread pool
  deadlocked in the first all-reduce (here it aborts after 3 + 10 s instead of 60)."""
  env = multidevice.environment(devices=8)
  env['XLA_FLAGS'] += (' --xla_cpu_collective_call_warn_stuck_timeout_seconds=3'
                       ' --xla_cpu_collective_call_terminate_timeout_seconds=10')
  steps = 120
  result = subprocess.run(
      [sys.executable, '-m', 'facegan_jax.main', '--config=configs/lfw_demo.py:test',
       f'--config.train.num_steps={steps}', f'--config.train.log_every={steps}',
       f'--config.checkpoint.every={steps}', f'--config.samples.every={steps}',
       f'--workdir={tmp_path}'], cwd=multidevice.ROOT, env=env, capture_output=True, text=True,
      timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'on 8 device(s)' in result.stderr and f'step {steps}/{steps}' in result.stderr
