"""NVIDIA StyleGAN2 networks as a run to sample, evaluate and fine-tune:

    python -m facegan_jax.import_stylegan2 --weights=ffhq.pkl --workdir=DIR
    python -m facegan_jax.import_stylegan2 --weights=G.npz --config=configs/ffhq.py --workdir=DIR

writes step 0 of a run in DIR holding the networks of `--weights`: an NVIDIA network pickle
(.pkl, read without PyTorch and without running anything from it), or an .npz of their
state_dicts keyed G/, G_ema/ and D/ (facegan_jax/pretrained/convert_stylegan2.py says how to
export one). A pickle states its networks' construction, so it needs no --config: the run's
config is configs/ffhq.py's 'stylegan2' training recipe with config.model as the file has it. A
--config (and any --config.model.FIELD) must agree with the file. An .npz needs the --config of
its networks. `python -m facegan_jax.sample --workdir=DIR` then samples them, `evaluate` scores
them, and `python -m facegan_jax.main` with the command this one prints fine-tunes them.
"""

import os

from absl import app
from absl import flags

from configs import ffhq
from facegan_jax import main as training_main
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.system import command_line
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error
from facegan_jax.training import config_check

FLAGS = flags.FLAGS
flags.DEFINE_string('weights', None, 'An NVIDIA network pickle (.pkl), or an .npz of NVIDIA '
                    'StyleGAN2 arrays keyed G/<state_dict key>, optionally G_ema/<key> and '
                    'D/<key>.')
# The training recipe of a pickle's run when no --config is given: NVIDIA's config F, which
# trained the published FFHQ networks.
BASE_CONFIG = 'configs/ffhq.py:stylegan2'


def _base_config_arg() -> str:
  """--config= of BASE_CONFIG, by the path of configs/ffhq.py (any working directory)."""
  return f'--config={os.path.relpath(ffhq.__file__)}:{BASE_CONFIG.split(":")[1]}'


def parse_flags(argv):
  """main's flag parsing; a --weights=*.pkl without --config gets BASE_CONFIG."""
  weights = [arg.split('=', 1)[1] for arg in argv if arg.startswith('--weights=')]
  _COMMAND_LINE['config_given'] = any(arg.startswith('--config=') for arg in argv)
  _COMMAND_LINE['model_fields'] = tuple(
      arg.split('=', 1)[0][len('--config.model.'):] for arg in argv
      if arg.startswith('--config.model.'))
  if weights and weights[-1].endswith('.pkl') and not _COMMAND_LINE['config_given']:
    argv = argv[:1] + [_base_config_arg()] + argv[1:]
  return training_main.parse_flags(argv)


def fine_tune_command(config, workdir: str) -> str:
  """The `main` command line that continues the run in `workdir`: BASE_CONFIG and every field
  in which `config` differs from it."""
  base = config_check.flatten(ffhq.get_config(BASE_CONFIG.split(':')[1]).to_dict())
  overrides = [f'--config.{field}={value}' for field, value in
               config_check.flatten(config.to_dict()).items() if base[field] != value]
  return ' '.join(['python -m facegan_jax.main', f'--config={BASE_CONFIG}', *overrides,
                   f'--workdir={workdir}'])


# Set by parse_flags: whether --config was given, and the config.model fields that the command
# line sets.
_COMMAND_LINE = {'config_given': True, 'model_fields': ()}


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  if not FLAGS.weights:
    raise UserError('--weights is required: the .pkl or .npz of the NVIDIA networks to '
                    'convert.')
  config = FLAGS.config
  if not _COMMAND_LINE['config_given']:
    convert_stylegan2.set_model_from_file(config, FLAGS.weights,
                                          keep=_COMMAND_LINE['model_fields'])
  convert_stylegan2.write_workdir(config, FLAGS.weights, FLAGS.workdir)
  print(f'Wrote step 0 of {FLAGS.workdir} from {FLAGS.weights}: sample it with python -m '
        f'facegan_jax.sample --workdir={FLAGS.workdir}.')
  if config.data.source == 'folder' and not config.data.path:
    print('To evaluate or fine-tune this run, import it again with --config.data.path=FACES; '
          'to train another config from these networks, use --config.init.from_pkl.')
  else:
    fine_tune = (fine_tune_command(config, FLAGS.workdir) if not _COMMAND_LINE['config_given']
                 else 'python -m facegan_jax.main with the same --config and --workdir')
    print(f'Evaluate it with python -m facegan_jax.evaluate --workdir={FLAGS.workdir}, or '
          f'fine-tune it with {fine_tune} (to train another config from these networks, use '
          '--config.init.from_pkl).')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
