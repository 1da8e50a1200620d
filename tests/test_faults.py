"""Faults are one line: a full disk during a checkpoint; the log is quiet unless asked."""

import json
import logging
import resource
import signal
import subprocess
import sys

import pytest

from facegan_jax.runs import checkpointing
from facegan_jax.system import quiet_log
from tests.helpers import multidevice
from tests.test_checkpointing import snapshot

FLAGS = ['--config=configs/lfw_demo.py:test', '--config.model.g_width=64',
         '--config.checkpoint.every=2']
FILE_SIZE_LIMIT = 300_000  # bytes: the samples and logs fit, the 10 MB checkpoint data does not


def limit_file_size():
  """In the child: writes beyond FILE_SIZE_LIMIT fail with EFBIG, as a full disk fails them."""
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_keeps_the_previous(tmp_path):
  main = [sys.executable, '-m', 'facegan_jax.main', *FLAGS, f'--workdir={tmp_path}']
  first = multidevice.run([*main, '--config.train.num_steps=2'])
  assert first.returncode == 0, first.stderr[-3000:]
  before = snapshot(tmp_path / 'checkpoints')
  full = subprocess.run([*main, '--config.train.num_steps=6'], cwd=multidevice.ROOT,
                        env=multidevice.environment(), capture_output=True, text=True,
                        timeout=300, preexec_fn=limit_file_size, check=False)
  assert full.returncode == 1 and 'Traceback' not in full.stderr, full.stderr[-3000:]
  assert full.stderr.strip().splitlines()[-1] == (
      f'error: could not write a checkpoint in {tmp_path}/checkpoints (File too large); the '
      'newest checkpoint there, step 2, is intact. Free space there (or lower '
      'config.checkpoint.keep) and run the same command to resume.')
  assert snapshot(tmp_path / 'checkpoints') == before  # and the partial write is gone


TENSORSTORE_EFBIG = ('OUT_OF_RANGE: Error writing "a/0.0" in OCDBT database at local file "/w/": '
                     'Failed to write 3 bytes to file 11: File too large [os_error_code=\'27\']')


@pytest.mark.parametrize('error, reason', [
    (ValueError(TENSORSTORE_EFBIG), 'File too large'),
    (ValueError('OUT_OF_RANGE: Error opening "zarr" driver: Error writing "step/.zarray" in OCDBT '
                'database at local file "/w/4.orbax-checkpoint-tmp/"'), 'File too large'),
    (ValueError('RESOURCE_EXHAUSTED: Error writing "b"'), 'No space left on device, or over quota'),
    (RuntimeError('the save failed'), 'the save failed'),
    (OSError(28, 'No space left on device'), 'No space left on device'),
    (ConnectionError('connection reset by peer'), 'connection reset by peer'),
])
def test_a_failed_write_is_told_in_the_oss_words(error, reason):
  assert checkpointing.write_error_reason(error) == reason


def test_a_failed_write_takes_the_errno_from_anywhere_in_the_chain():
  try:
    try:
      raise OSError(122, 'Disk quota exceeded')
    except OSError as cause:
      raise RuntimeError('async save failed') from cause
  except RuntimeError as error:
    assert checkpointing.write_error_reason(error) == 'Disk quota exceeded'


def record(pathname, level):
  return logging.LogRecord('absl', level, pathname, 1, 'message', (), None)


@pytest.mark.parametrize('pathname, level, shown', [
    ('/repo/facegan_jax/training/loop.py', logging.INFO, True),
    ('/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py', logging.INFO,
     False),
    ('/venv/lib/python3.11/site-packages/orbax/checkpoint/future.py', logging.ERROR, False),
    ('/venv/lib/python3.11/site-packages/jax/_src/xla_bridge.py', logging.INFO, False),
    ('/venv/lib/python3.11/site-packages/jax/_src/xla_bridge.py', logging.WARNING, True),
])
def test_the_quiet_log_keeps_our_lines_and_library_warnings(pathname, level, shown):
  assert quiet_log.LibraryFilter().filter(record(pathname, level)) == shown


def test_the_quiet_log_drops_asyncio_reports_of_orbax_tasks_only():
  def asyncio_error(message):
    return logging.LogRecord('asyncio', logging.ERROR, '/usr/lib/python3.11/asyncio/'
                             'base_events.py', 1, message, (), None)
  orbax_task = ('Task exception was never retrieved\nfuture: <Task finished coro=<'
                'async_serialize_from_host() done, defined at /venv/lib/python3.11/'
                'site-packages/orbax/checkpoint/_src/serialization/serialization.py:126>>')
  assert not quiet_log.LibraryFilter().filter(asyncio_error(orbax_task))
  assert quiet_log.LibraryFilter().filter(asyncio_error('Task exception was never retrieved'))


def raised_in(filename):
  """The exc_info of a ValueError raised by code that claims to be in `filename`."""
  try:
    code = compile('raise ValueError("OUT_OF_RANGE: Error writing")', filename, 'exec')
    exec(code)  # pylint: disable=exec-used
  except ValueError:
    return sys.exc_info()
  raise AssertionError('not raised')


@pytest.mark.parametrize('filename, shown', [
    ('/venv/lib/python3.11/site-packages/orbax/checkpoint/_src/serialization/serialization.py',
     False),
    ('/venv/lib/python3.11/site-packages/other/module.py', True)])
def test_the_quiet_log_drops_asyncio_futures_whose_exception_orbax_raised(filename, shown):
  record = logging.LogRecord('asyncio', logging.ERROR, '/usr/lib/python3.11/asyncio/'
                             'base_events.py', 1, '_GatheringFuture exception was never retrieved'
                             '\nfuture: <_GatheringFuture finished exception=ValueError()>', (),
                             raised_in(filename))
  assert quiet_log.LibraryFilter().filter(record) == shown


@pytest.mark.slow
@pytest.mark.parametrize('verbosity', [0, 1])
def test_a_run_logs_its_progress_and_libraries_only_with_verbosity(tmp_path, verbosity):
  result = multidevice.run_python(['-m', 'facegan_jax.main', '--config=configs/lfw_demo.py:test',
                                   f'--workdir={tmp_path}', f'--verbosity={verbosity}'])
  assert result.returncode == 0, result.stderr[-3000:]
  orbax_lines = [line for line in result.stderr.splitlines() if 'checkpoint_manager.py' in line]
  assert bool(orbax_lines) == bool(verbosity)
  assert 'Config: --config=configs/lfw_demo.py:test\n' in result.stderr
  assert f'Every field of the config: {tmp_path}/config.json\n' in result.stderr
  assert 'model:' not in result.stderr  # no config dump
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['model']['g_width'] == 8
  if not verbosity:
    assert len(result.stderr.splitlines()) < 15, result.stderr
