"""SIGTERM and SIGINT: finish the step, save it, exit 75 with one line; resuming is bit-exact."""

import os
import random
import signal
import subprocess
import sys
import time

import jax
import pytest

from facegan_jax.runs import checkpointing
from facegan_jax.system import errors
from facegan_jax.training import preemption
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import multidevice
from tests.test_checkpointing import assert_identical
from tests.test_checkpointing import small_config

STEPS, EVERY = 400, 25
FLAGS = ['--config=configs/lfw_demo.py:test', f'--config.train.num_steps={STEPS}',
         f'--config.checkpoint.every={EVERY}', '--config.train.log_every=100',
         f'--config.samples.every={STEPS}']
MAIN = [sys.executable, '-m', 'facegan_jax.main', *FLAGS]


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_ask_to_stop_and_a_second_one_acts_as_usual(signum):
  # What was there before (SIG_IGN for SIGINT when the tests run in a background job).
  outside = {other: signal.getsignal(other) for other in (signal.SIGTERM, signal.SIGINT)}
  previous = signal.getsignal(signum)
  with preemption.StopSignals() as stop_signals:
    assert not stop_signals.should_stop(1)
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # Python runs the handler between bytecodes of the main thread
    assert stop_signals.should_stop(2) and stop_signals.received == signum.name
    assert signal.getsignal(signum) is previous  # the next one is not caught
  assert {other: signal.getsignal(other) for other in outside} == outside


def test_a_signal_whose_exception_python_ignored_stops_the_run_before_its_first_step():
  """A SIGINT landing in a garbage-collection callback: Python prints its StoppedBySignal and
  goes on; StopSignals raises it again on entry, and leaves the handlers as they were."""
  outside = {other: signal.getsignal(other) for other in (signal.SIGTERM, signal.SIGINT)}
  with preemption.SignalsStopAtOnce():
    try:
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
    except errors.StoppedBySignal:
      pass  # as if Python had ignored it
    with pytest.raises(errors.StoppedBySignal, match=r'^SIGINT received outside the train steps'):
      with preemption.StopSignals():
        pass
    assert signal.getsignal(signal.SIGINT).__self__.__class__ is preemption.SignalsStopAtOnce
  assert {other: signal.getsignal(other) for other in outside} == outside


def final_state(workdir):
  config = small_config(num_steps=STEPS, every=EVERY)
  template = state_lib.create_train_state(trainer_lib.make_trainer(config), jax.random.key(0), (32, 32, 1))
  return checkpointing.restore_state(checkpointing.make_manager(str(workdir), create=False),
                                     STEPS, template)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('whole')
  run = multidevice.run([*MAIN, f'--workdir={workdir}'])
  assert run.returncode == 0, run.stderr[-3000:]
  return final_state(workdir)


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_a_random_moment_saves_that_step_and_the_same_command_resumes_bit_exactly(
    tmp_path, uninterrupted, signum):
  workdir = tmp_path / 'stopped'
  process = subprocess.Popen([*MAIN, f'--workdir={workdir}'], cwd=multidevice.ROOT,
                             env=multidevice.environment(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not (workdir / 'checkpoints' / str(EVERY)).is_dir():
    assert time.time() < deadline and process.poll() is None, 'no checkpoint was written'
    time.sleep(0.02)
  time.sleep(random.uniform(0.0, 0.5))
  process.send_signal(signum)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 75, stderr[-3000:]
  assert 'Traceback' not in stderr
  last_line = stderr.strip().splitlines()[-1]
  stopped_at = max(checkpointing.make_manager(str(workdir), create=False).all_steps())
  assert EVERY <= stopped_at < STEPS, 'the run ended before the signal'
  assert last_line == (f'stopped: {signum.name} received: saved the checkpoint of step '
                       f'{stopped_at} in {workdir}/checkpoints; run the same command to resume '
                       'from it.')

  resumed_run = multidevice.run([*MAIN, f'--workdir={workdir}'])
  assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]
  assert f'from step {stopped_at} to {STEPS}' in resumed_run.stderr
  assert_identical(final_state(workdir), uninterrupted)
