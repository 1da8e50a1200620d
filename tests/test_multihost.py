"""Several processes (gloo collectives on 127.0.0.1) train what one process with as many devices
trains; their checkpoint restores in a single process; bad topologies are clear errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from facegan_jax.runs import checkpointing
from facegan_jax.sampling import generation
from facegan_jax.system import distributed
from facegan_jax.system.errors import UserError
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests import test_conditional_training
from tests.helpers import multidevice
from tests.helpers import multihost_batches
from tests.helpers import steps_on_meshes

LAUNCH_DIR = os.path.join(multidevice.ROOT, 'launch')
FLAGS = ['--config=configs/lfw_demo.py:test', '--config.train.num_steps=6',
         '--config.train.log_every=1', '--config.checkpoint.every=3']


def free_port():
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def launch(num_processes, *flags, devices=2):
  """launch/local_multihost.sh with `devices` CPU devices per process."""
  return multidevice.run(['bash', os.path.join(LAUNCH_DIR, 'local_multihost.sh'),
                          str(num_processes), *flags], devices=devices,
                         env=dict(os.environ, PYTHON=sys.executable))


def metrics(workdir, *names):
  """[steps, len(names)] of metrics.jsonl's lines."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    lines = [json.loads(line) for line in f]
  return np.array([[line[name] for name in names] for line in lines])


def losses(workdir):
  return metrics(workdir, 'd_loss', 'g_loss')


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['ada_test', 'sngan_test', 'stylegan2_test', 'r3gan_test'])
def test_two_processes_of_two_devices_train_like_one_process_of_four(tmp_path, variant):
  """DCGAN with ADA (r_t reduced over both processes), a conditional SNGAN (labels sharded with
  their images over the processes), StyleGAN2 and R3GAN."""
  multi, single = tmp_path / 'multi', tmp_path / 'single'
  flags = [f'--config=configs/lfw_demo.py:{variant}', *FLAGS[1:], '--config.optim.decay_steps=6']
  if variant == 'sngan_test':
    faces = test_conditional_training.labelled_zip(tmp_path / 'faces.zip')
    flags += ['--config.data.source=zip', f'--config.data.path={faces}', '--config.data.crop=0',
              '--config.data.labels=dataset_json', '--config.model.c_dim=2',
              f'--config.data.cache_dir={tmp_path / "cache"}']
  result = launch(2, *flags, f'--workdir={multi}')
  assert result.returncode == 0, result.stderr[-3000:]
  result = multidevice.run_python(['-m', 'facegan_jax.main', *flags, f'--workdir={single}'],
                                  devices=4)
  assert result.returncode == 0, result.stderr[-3000:]
  np.testing.assert_allclose(losses(multi), losses(single), rtol=2e-5, atol=2e-6)
  assert len(losses(multi)) == 6
  if variant == 'ada_test':  # p moved, alike
    p = [metrics(workdir, 'augment_p') for workdir in (multi, single)]
    np.testing.assert_array_equal(p[0], p[1])
    assert p[0][-1] > 0

  # Both checkpoints restore here, in one process with one device.
  multi_restored = generation.RestoredGenerator(str(multi))
  single_restored = generation.RestoredGenerator(str(single))
  assert multi_restored.step == single_restored.step == 6
  assert checkpointing.make_manager(str(multi), create=False).all_steps() == [3, 6]
  # SNGAN's G biases in front of a BatchNorm have gradients of round-off size, which Adam
  # scales to steps of the learning rate (tests/helpers/steps_on_meshes.py): with b1 = 0 a step
  # is at most lr / sqrt(1 - b2) = 3.2 lr, so two runs part by at most 2 x 3.2 lr per step.
  config = multi_restored.config  # the run's, labels included
  size = config.model.resolution
  abstract = jax.eval_shape(lambda: state_lib.create_train_state(
      trainer_lib.make_trainer(config), jax.random.key(0), (size, size, 1)))
  d_fields = {'d_params': abstract.d_params}
  if abstract.d_batch_stats:  # StyleGAN2's D has none
    d_fields['d_batch_stats'] = abstract.d_batch_stats
  discriminators = [checkpointing.restore_fields(
      checkpointing.make_manager(str(workdir), create=False), 6, d_fields)
      for workdir in (multi, single)]
  multi_leaves, single_leaves = (jax.tree_util.tree_leaves_with_path(
      {'g': restored.variables['params'], 'g_stats': restored.variables.get('batch_stats', {}),
       'd': discriminator})
      for restored, discriminator in zip((multi_restored, single_restored), discriminators))
  for (path, multi_leaf), (_, single_leaf) in zip(multi_leaves, single_leaves, strict=True):
    round_off = variant == 'sngan_test' and steps_on_meshes.is_round_off(path)
    atol = 2 * 3.2 * 2e-4 * 6 if round_off else 2e-6
    np.testing.assert_allclose(multi_leaf, single_leaf, rtol=1e-4, atol=atol)
  labels = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]] if multi_restored.c_dim else None
  images = multi_restored.images(multi_restored.seed_latents(0, 4), labels)
  assert images.shape == (4, size, size, 1) and images.std() > 0


@pytest.mark.slow
def test_each_process_feeds_its_own_disjoint_part_of_the_global_batch(tmp_path):
  address = f'127.0.0.1:{free_port()}'
  prefix = str(tmp_path / 'batches')
  processes = [subprocess.Popen([sys.executable, 'tests/helpers/multihost_batches.py', prefix,
                                 address, '2', str(index)], cwd=multidevice.ROOT,
                                env=multidevice.environment(), stderr=subprocess.PIPE,
                                text=True) for index in range(2)]
  for process in processes:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
  parts = [np.load(f'{prefix}_{index}.npy')[..., 0, 0, 0] for index in range(2)]  # [S, 1, B/2]
  whole = np.stack([batch for batch, _ in zip(
      multihost_batches.input_pipeline.host_batches(
          multihost_batches.labelled_images(), seed=0, start_step=0,
          batch_size=multihost_batches.BATCH_SIZE), range(multihost_batches.STEPS))])
  for step in range(multihost_batches.STEPS):
    assert not set(parts[0][step].ravel()) & set(parts[1][step].ravel())
    np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]], axis=-1),
                                  whole[step][..., 0, 0, 0])


def test_a_global_batch_that_does_not_split_over_all_processes_devices_is_refused(tmp_path):
  result = launch(2, '--config=configs/lfw_demo.py:test', '--config.train.batch_size=6',
                  f'--workdir={tmp_path}')
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  assert ('error: config.train.batch_size=6 does not split over 4 devices; use a positive '
          'multiple of 4.') in result.stderr


def test_a_process_that_cannot_reach_the_coordinator_stops_with_a_message(tmp_path):
  address = f'127.0.0.1:{free_port()}'
  result = multidevice.run_python(['-m', 'facegan_jax.main', '--config=configs/lfw_demo.py:test',
                                   f'--workdir={tmp_path}', f'--coordinator_address={address}',
                                   '--num_processes=2', '--process_id=1',
                                   '--coordinator_timeout=2'])
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: cannot reach the coordinator at {address} within 2 s; start process 0 first, '
      'check that this host can reach that address and port (firewall), or raise '
      '--coordinator_timeout.')


def test_cluster_settings_from_flags_environment_and_schedulers():
  assert distributed.cluster_settings(environ={}) is None
  assert distributed.cluster_settings('h:1', 2, 1, environ={}) == {
      'coordinator_address': 'h:1', 'num_processes': 2, 'process_id': 1}
  from_env = {'FACEGAN_COORDINATOR_ADDRESS': 'h:2', 'FACEGAN_NUM_PROCESSES': '3',
              'FACEGAN_PROCESS_ID': '2'}
  assert distributed.cluster_settings(environ=from_env)['process_id'] == 2
  assert distributed.cluster_settings(num_processes=1, environ=from_env) is None
  assert distributed.cluster_settings(environ={'SLURM_NTASKS': '4'}) == {}
  assert distributed.cluster_settings(auto_detect=True, environ={}) == {}
  with pytest.raises(UserError, match=r'a run of 2 processes needs --coordinator_address'):
    distributed.cluster_settings(num_processes=2, process_id=5,
                                 environ={'FACEGAN_COORDINATOR_ADDRESS': 'h:1'})


@pytest.mark.parametrize('script', ['local_multihost.sh', 'tpu_pod.sh', 'slurm_gpu.sbatch'])
def test_launch_scripts_pass_bash_n_and_shellcheck(script):
  path = os.path.join(LAUNCH_DIR, script)
  subprocess.run(['bash', '-n', path], check=True)
  shellcheck = os.path.join(os.path.dirname(sys.executable), 'shellcheck')
  result = subprocess.run([shellcheck, path], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_a_sigterm_to_one_process_stops_every_process_at_the_same_saved_step(tmp_path):
  steps, every = 2000, 20
  address = f'127.0.0.1:{free_port()}'
  processes = [subprocess.Popen(
      [sys.executable, '-m', 'facegan_jax.main', '--config=configs/lfw_demo.py:test',
       f'--config.train.num_steps={steps}', f'--config.checkpoint.every={every}',
       '--config.train.log_every=500', f'--config.samples.every={steps}',
       f'--workdir={tmp_path}', f'--coordinator_address={address}', '--num_processes=2',
       f'--process_id={index}'], cwd=multidevice.ROOT, env=multidevice.environment(),
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for index in range(2)]
  deadline = time.time() + 240
  while not (tmp_path / 'checkpoints' / str(every)).is_dir():
    assert time.time() < deadline and processes[0].poll() is None, 'no checkpoint was written'
    time.sleep(0.02)
  processes[1].send_signal(signal.SIGTERM)  # not the chief: the notice must reach process 0
  last_lines = []
  for process in processes:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 75, stderr[-3000:]
    last_lines.append(stderr.strip().splitlines()[-1])
  stopped_at = max(checkpointing.make_manager(str(tmp_path), create=False).all_steps())
  assert every <= stopped_at < steps
  assert last_lines == [f'stopped: preemption notice (SIGTERM) received: saved the checkpoint '
                        f'of step {stopped_at} in {tmp_path}/checkpoints; run the same command '
                        'to resume from it.'] * 2


def slurm_job_id():
  """A job id whose port (JAX's SLURM rule: 61440 + id % 4096) is free here now."""
  for job_id in np.random.default_rng().permutation(4096):
    with socket.socket() as sock:
      try:
        sock.bind(('127.0.0.1', 61440 + int(job_id)))
      except OSError:
        continue
    return int(job_id)
  raise RuntimeError('no free port in 61440-65535')


@pytest.mark.slow
def test_the_slurm_launcher_trains_the_ffhq_recipe_as_two_tasks(tmp_path):
  """launch/slurm_gpu.sbatch run as sbatch would, with a stand-in srun that starts its two tasks
  here with SLURM's variables: JAX finds the cluster from them alone, and configs/ffhq.py
  (shrunk to 16x16 with 8 to 16 channels) trains from a folder of PNGs."""
  bin_dir, faces = tmp_path / 'bin', tmp_path / 'ffhq'
  bin_dir.mkdir()
  faces.mkdir()
  os.symlink(os.path.join(multidevice.ROOT, 'tests', 'helpers', 'fake_srun.sh'),
             bin_dir / 'srun')
  (bin_dir / 'python3').write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this venv's
  (bin_dir / 'python3').chmod(0o755)
  rng = np.random.default_rng(0)
  for i in range(16):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(faces / f'{i:05d}.png')
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_NTASKS='2',
             SLURM_JOB_ID=str(slurm_job_id()), SLURM_STEP_NODELIST='localhost')
  workdir = tmp_path / 'run'
  result = multidevice.run(
      ['bash', os.path.join(LAUNCH_DIR, 'slurm_gpu.sbatch'), '--config=configs/ffhq.py',
       f'--config.data.path={faces}', f'--config.data.cache_dir={tmp_path / "cache"}',
       f'--workdir={workdir}', '--config.model.resolution=16', '--config.model.channel_base=128',
       '--config.model.channel_max=16', '--config.model.latent_dim=16',
       '--config.model.w_dim=16', '--config.model.mapping_layers=2',
       '--config.model.mbstd_group_size=4', '--config.train.batch_size=8',
       '--config.train.num_steps=1', '--config.samples.count=4'], env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Process 1 of 2' in result.stderr and 'Process 0 of 2' in result.stderr
  assert len(losses(workdir)) == 1  # one step (both lazy regularisers), logged and saved
  restored = generation.RestoredGenerator(str(workdir), truncation=0.7)
  assert restored.step == 1
  assert restored.images(restored.seed_latents(0, 4)).shape == (4, 16, 16, 3)
