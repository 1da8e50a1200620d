"""The divergence guard: a step that overflows stops the run before anything of it is saved."""

import json
import math
import os

import jax.numpy as jnp
import pytest

from configs import lfw_demo
from facegan_jax.runs import checkpointing
from facegan_jax.system import errors
from facegan_jax.training import divergence
from facegan_jax.training import loop

OVERFLOWING_RATE = 1e30  # Adam moves every weight by about the rate: activations overflow


def config(num_steps, learning_rate=2e-4):
  config = lfw_demo.get_config('test')
  config.train.num_steps = num_steps
  config.train.log_every = config.samples.every = config.checkpoint.every = 2
  config.checkpoint.keep = 1  # a saved non-finite state would rotate the good one out
  config.optim.g_learning_rate = config.optim.d_learning_rate = learning_rate
  return config


def files(workdir, *names):
  """{relative path: bytes} of the files under `names` (files or folders) in `workdir`."""
  found = {}
  for name in names:
    path = os.path.join(workdir, name)
    paths = [path] if os.path.isfile(path) else [
        os.path.join(root, leaf) for root, _, leaves in os.walk(path) for leaf in leaves]
    for each in paths:
      with open(each, 'rb') as f:
        found[os.path.relpath(each, workdir)] = f.read()
  return found


def strict_json_lines(path):
  def refuse(token):
    raise ValueError(f'{token} is not JSON')
  with open(path) as f:
    return [json.loads(line, parse_constant=refuse) for line in f]


def test_all_finite_looks_at_every_float_leaf_only():
  tree = {'w': jnp.ones((2, 3)), 'count': jnp.int32(7), 'b': jnp.zeros(4)}
  assert bool(divergence.all_finite(tree))
  for bad in (jnp.nan, jnp.inf, -jnp.inf):
    assert not bool(divergence.all_finite(tree, {'x': jnp.array([0.0, bad])}))


def test_first_nonfinite_names_the_first_bad_step_and_metric():
  good = {'d_loss': 1.0, 'g_loss': 0.5, 'd_grad_norm': 3.0, 'params_finite': True}
  assert divergence.first_nonfinite([good, good], 11) is None
  assert divergence.first_nonfinite(
      [good, dict(good, g_loss=math.inf), dict(good, d_loss=math.nan)], 11) == (12, 'g_loss=inf')
  assert divergence.first_nonfinite([good, good, dict(good, d_grad_norm=math.inf)], 11) == (
      13, 'd_grad_norm=inf')
  assert divergence.first_nonfinite([good, dict(good, params_finite=False)], 11) == (
      12, 'its new parameters (not all finite)')


def test_an_overflowing_learning_rate_stops_before_saving_and_keeps_the_last_good_checkpoint(
    tmp_path):
  workdir = str(tmp_path)
  loop.train_and_evaluate(config(num_steps=2), workdir)
  before = files(workdir, 'checkpoints', 'samples', 'metrics.jsonl')
  # Raising the learning rates on resume is allowed (lowering them is how to continue).
  with pytest.raises(errors.Diverged) as stop:
    loop.train_and_evaluate(config(num_steps=40, learning_rate=OVERFLOWING_RATE), workdir)
  message = str(stop.value)
  assert len(message.splitlines()) == 1
  step = int(message.split('training diverged at step ')[1].split(':')[0])
  assert step > 2, message
  assert (f'the newest checkpoint, step 2 in {workdir}/checkpoints, is the last finite state; '
          'resume it with lower learning rates') in message
  manager = checkpointing.make_manager(workdir, create=False)
  assert manager.all_steps() == [2]
  after = files(workdir, 'checkpoints', 'samples', 'metrics.jsonl')
  # Steps before the bad one may have been logged, sampled and saved, nothing from it on.
  assert {name: data for name, data in after.items() if name in before} == before
  assert all(line['step'] < step for line in strict_json_lines(f'{workdir}/metrics.jsonl'))
  assert all(int(name.split('step_')[1][:7]) < step
             for name in after if name.startswith('samples'))


def test_a_run_that_diverges_before_its_first_checkpoint_saves_nothing(tmp_path):
  with pytest.raises(errors.Diverged, match='nothing after it was saved, and no checkpoint was '
                     'written; rerun with lower learning rates'):
    loop.train_and_evaluate(config(num_steps=40, learning_rate=OVERFLOWING_RATE), str(tmp_path))
  assert not os.listdir(tmp_path / 'checkpoints')
  assert not (tmp_path / 'samples').exists() or not os.listdir(tmp_path / 'samples')


@pytest.mark.parametrize('stop, code, line', [
    (errors.UserError('config.x=1 is bad; use 2.'), 1, 'error: config.x=1 is bad; use 2.'),
    (errors.Diverged('training diverged at step 3: d_loss=nan'), 3,
     'error: training diverged at step 3: d_loss=nan'),
    (errors.Preempted('SIGTERM received'), 75, 'stopped: SIGTERM received'),
    (KeyboardInterrupt(), 130, 'stopped: interrupted.')])
def test_entry_points_turn_stops_into_one_line_and_their_exit_code(capsys, stop, code, line):
  def main(argv):
    del argv
    raise stop
  with pytest.raises(SystemExit) as exit_:
    errors.exit_on_user_error(main)(['prog'])
  assert exit_.value.code == code
  assert capsys.readouterr().err == line + '\n'
