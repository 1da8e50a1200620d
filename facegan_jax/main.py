"""Entry point: python -m facegan_jax.main --config=configs/celeba.py --workdir=DIR."""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from facegan_jax import train
from facegan_jax.errors import exit_on_user_error

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with a variant: configs/FILE.py[:variant].',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for samples, metrics and checkpoints.')
flags.mark_flags_as_required(['config', 'workdir'])


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logging.info('Config:\n%s', FLAGS.config)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
