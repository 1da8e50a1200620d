"""Entry point: python -m facegan_jax.main --config=configs/celeba.py --workdir=DIR.

Several processes (TPU pods, GPU clusters, launch/local_multihost.sh) join one run through
`jax.distributed` before anything else touches JAX; see facegan_jax/distributed.py.
"""

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from facegan_jax import distributed
from facegan_jax import train
from facegan_jax import xla_flags
from facegan_jax.errors import exit_on_user_error

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


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.config.deterministic:
    xla_flags.add_xla_flags(xla_flags.GPU_DETERMINISM, 'config.deterministic')
  xla_flags.add_speed_flags()
  settings = distributed.cluster_settings(FLAGS.coordinator_address, FLAGS.num_processes,
                                          FLAGS.process_id, FLAGS.distributed)
  if settings is not None:
    distributed.initialize(settings, FLAGS.coordinator_timeout)
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)  # one log for the run, from process 0
  logging.info('Config:\n%s', FLAGS.config)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
