"""Entry point: python -m facegan_jax.main --config=configs/celeba.py --workdir=DIR.

Several processes (TPU pods, GPU clusters, launch/local_multihost.sh) join one run through
`jax.distributed` before anything else touches JAX; see facegan_jax/system/distributed.py.
"""

import os
import signal
import sys
import traceback


def _stop_while_starting(signum, frame):
  """SIGINT/SIGTERM before main() runs (while Python imports JAX): nothing is written yet."""
  del frame
  print(f'stopped: {signal.Signals(signum).name} received while starting; nothing was written.',
        file=sys.stderr, flush=True)
  os._exit(75)  # pylint: disable=protected-access


if __name__ == '__main__':  # from the first line: `main` takes over once the flags are read
  for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, _stop_while_starting)

import jax  # pylint: disable=wrong-import-position
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.system import compile_cache
from facegan_jax.system import distributed
from facegan_jax.system import errors
from facegan_jax.system import quiet_log
from facegan_jax.system import xla_flags
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error
from facegan_jax.system.errors import exit_with
from facegan_jax.training import config_check
from facegan_jax.training import loop
from facegan_jax.training import preemption

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with a variant: configs/FILE.py[:variant].',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for samples, metrics and checkpoints.')
flags.DEFINE_bool('distributed', False, 'Join a multi-process run whose settings JAX detects '
                  '(TPU VM pods, Kubernetes). SLURM and Open MPI are detected without it.')
flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0, for a multi-process '
                    'run (default: $FACEGAN_COORDINATOR_ADDRESS).')
flags.DEFINE_integer('num_processes', None, 'Processes in the run '
                     '(default: $FACEGAN_NUM_PROCESSES).')
flags.DEFINE_integer('process_id', None, 'This process, 0-based (default: $FACEGAN_PROCESS_ID).')
flags.DEFINE_integer('coordinator_timeout', 300, 'Seconds to wait for all processes to join.')
flags.mark_flags_as_required(['config', 'workdir'])


def _override_names(argv) -> list[str]:
  """The dotted fields of the --config.FIELD=VALUE overrides in `argv`."""
  return [arg.split('=', 1)[0][len('--config.'):] for arg in argv if arg.startswith('--config.')]


def _config_file_error(error: BaseException, path: str) -> UserError:
  """One line for a config file that fails to load: the file, the line and the cause."""
  while error.__cause__ is not None or error.__context__ is not None:
    error = error.__cause__ or error.__context__  # the innermost error: the config's own
  if isinstance(error, SyntaxError):
    return UserError(f'{error.filename}:{error.lineno}: {error.msg}; fix the config file.')
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(frame.filename) == os.path.abspath(path)]
  where = f'{path}:{lines[-1]}' if lines else path
  return UserError(f'{where}: {type(error).__name__}: {str(error).splitlines()[0]}')


def _config_path(argv) -> str:
  """The file of --config=FILE[:variant] in `argv`, or ''."""
  values = [arg.split('=', 1)[1] for arg in argv if arg.startswith('--config=')]
  return values[-1].split(':')[0] if values else ''


def parse_flags(argv):
  """absl's flag parsing, with a missing, broken or mistyped config as a one-line error."""
  path = _config_path(argv)
  try:
    remaining = FLAGS(argv)
    if not os.path.isfile(path):
      raise UserError(f'--config={path}: no such file; use a config file such as '
                      'configs/lfw_demo.py (with an optional :variant).')
    FLAGS.config.to_dict()  # the config loads here, where it can still be reported
    return remaining
  except UserError as error:
    exit_with(error)
  except AttributeError:  # an override of a field that the config does not have
    unknown = [name for name in _override_names(argv) if name not in config_check.FIELDS]
    if not unknown:
      raise
    exit_with(UserError(f'--config.{unknown[0]}: config.{unknown[0]} is not a config field'
                        f'{config_check.nearest_field(unknown[0], config_check.FIELDS)}; use a '
                        'field of configs/default.py.'))
  except flags.Error as error:  # a bad flag value, or a config file that raised
    if 'parsing config file' in str(error):
      exit_with(_config_file_error(error, path))
    exit_with(UserError(f'{str(error).splitlines()[0]}; see --helpfull.'))
  except Exception as error:  # pylint: disable=broad-except
    exit_with(_config_file_error(error, path))  # raised while the config module loaded


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  quiet_log.install(FLAGS.verbosity)
  if FLAGS.config.deterministic:
    xla_flags.add_xla_flags(xla_flags.GPU_DETERMINISM, 'config.deterministic')
  xla_flags.add_speed_flags()
  compile_cache.enable(FLAGS.config.compilation_cache, FLAGS.workdir)
  settings = distributed.cluster_settings(FLAGS.coordinator_address, FLAGS.num_processes,
                                          FLAGS.process_id, FLAGS.distributed)
  if settings is not None:
    distributed.initialize(settings, FLAGS.coordinator_timeout)
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)  # one log for the run, from process 0
  logging.info('Config: %s', ' '.join(arg for arg in sys.argv[1:] if arg.startswith('--config')))
  # Read and checked against config.model before anything is written or compiled.
  initial_networks = (convert_stylegan2.read_initial_networks(FLAGS.config)
                      if FLAGS.config.init.from_pkl else None)
  with preemption.SignalsStopAtOnce(), compile_cache.CacheCount() as count:
    loop.train_and_evaluate(FLAGS.config, FLAGS.workdir, initial_networks)
  logging.info('Programs of this run: %s.', count.describe())


if __name__ == '__main__':
  errors.EXIT_AT_ONCE = True
  app.run(main, flags_parser=parse_flags)
