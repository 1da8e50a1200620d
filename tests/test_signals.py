"""SIGINT and SIGTERM at any moment of `main`, StyleGAN2 included: one line, exit 75, no
traceback or crash, and nothing half-written (the step-level stops are tests/test_preemption.py's)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import multidevice

DCGAN = ['--config=configs/lfw_demo.py:test', '--config.train.num_steps=3000',
         '--config.train.log_every=1000', '--config.samples.every=100000']
STYLEGAN2 = ['--config=configs/lfw_demo.py:stylegan2_test', '--config.train.num_steps=3000',
             '--config.train.log_every=1000', '--config.samples.every=100000']


def start(workdir, flags):
  return subprocess.Popen([sys.executable, '-m', 'facegan_jax.main', *flags,
                           f'--workdir={workdir}'], cwd=multidevice.ROOT,
                          env=multidevice.environment(), stderr=subprocess.PIPE, text=True)


def wait_for_line(process, marker, timeout=600):
  """Reads the process's log until a line holds `marker`; returns what it read."""
  seen, deadline = [], time.time() + timeout
  while time.time() < deadline:
    line = process.stderr.readline()
    assert line, f'the run ended before "{marker}": {"".join(seen)[-3000:]}'
    seen.append(line)
    if marker in line:
      return ''.join(seen)
  raise AssertionError(f'no "{marker}" within {timeout} s')


def catches_sigterm(pid) -> bool:
  """Whether the process has a handler for SIGTERM (Python itself installs none)."""
  with open(f'/proc/{pid}/status') as status:
    caught = next(line for line in status if line.startswith('SigCgt:')).split()[1]
  return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def stop(process, signum):
  """Sends `signum`; (exit code, the rest of the log)."""
  process.send_signal(signum)
  rest = process.stderr.read()
  return process.wait(timeout=120), rest


def assert_stopped_cleanly(code, log, first_words):
  assert code == 75, log[-3000:]  # not -11 (a segmentation fault) nor 0 (ignored)
  assert 'Traceback' not in log and 'Fatal Python error' not in log, log[-3000:]
  assert log.strip().splitlines()[-1].startswith(first_words), log[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_python_starts_stops_before_anything_is_written(tmp_path, signum):
  process = start(tmp_path / 'run', DCGAN)
  while not catches_sigterm(process.pid):  # main.py's first lines have run; JAX is importing
    time.sleep(0.005)
  code, log = stop(process, signum)
  assert_stopped_cleanly(code, log, f'stopped: {signum.name} received while starting; nothing '
                         'was written.')
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
@pytest.mark.parametrize('flags, model', [(DCGAN, 'dcgan'), (STYLEGAN2, 'stylegan2')])
def test_ctrl_c_while_the_step_compiles_stops_at_once(tmp_path, flags, model):
  process = start(tmp_path / 'run', flags)
  wait_for_line(process, f'Training {model} from step 0')  # its step programs compile next
  started = time.time()
  code, log = stop(process, signal.SIGINT)
  assert_stopped_cleanly(code, log, 'stopped: SIGINT received')
  assert time.time() - started < 60
  if 'outside the train steps' in log:  # it came before the first step: nothing was saved
    assert not (tmp_path / 'run' / 'checkpoints').exists() or not [
        name for name in os.listdir(tmp_path / 'run' / 'checkpoints') if name.isdigit()]


@pytest.mark.slow
def test_sigterm_during_the_first_checkpoint_saves_a_complete_one(tmp_path):
  process = start(tmp_path / 'run', [*DCGAN, '--config.checkpoint.every=1'])
  wait_for_line(process, 'ready in')
  checkpoints = tmp_path / 'run' / 'checkpoints'
  while not checkpoints.exists() or not os.listdir(checkpoints):
    time.sleep(0.01)  # the first save has begun
  code, log = stop(process, signal.SIGTERM)
  assert_stopped_cleanly(code, log, 'stopped: SIGTERM received: saved the checkpoint of step ')
  step = int(log.strip().splitlines()[-1].split('step ')[1].split(' ')[0])
  assert (checkpoints / str(step)).is_dir()
  assert all(name.isdigit() for name in os.listdir(checkpoints))  # no half-written one left
