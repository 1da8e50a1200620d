"""Entry point: python -m facegan_jax.main --config=configs/celeba.py --workdir=DIR."""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from facegan_jax import train
from facegan_jax.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with a variant: configs/FILE.py[:variant].',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for samples, metrics and checkpoints.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logging.info('Config:\n%s', FLAGS.config)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except UserError as error:
    logging.error('%s', error)
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main)
