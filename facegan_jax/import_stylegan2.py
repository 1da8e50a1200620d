"""NVIDIA StyleGAN2 networks and R3GAN snapshots as a run to sample, evaluate and fine-tune:

    python -m facegan_jax.import_stylegan2 --weights=ffhq.pkl --workdir=DIR
    python -m facegan_jax.import_stylegan2 --weights=G.npz --config=configs/ffhq.py --workdir=DIR
    python -m facegan_jax.import_stylegan2 --weights=network-snapshot.pkl --workdir=DIR

writes step 0 of a run in DIR holding the networks of `--weights`: an NVIDIA network pickle
(.pkl, read without PyTorch and without running anything from it), or an .npz of their
state_dicts keyed G/, G_ema/ and D/ (facegan_jax/pretrained/convert_stylegan2.py says how to
export one), or an R3GAN snapshot (brownvc/R3GAN's network-snapshot-*.pkl). A pickle states its
networks' construction, so it needs no --config: the run's config is configs/ffhq.py's
'stylegan2' training recipe (R3GAN: its 'r3gan256' preset from 256x256 up, else 'r3gan64')
with config.model as the file has it. A --config (and any --config.model.FIELD) must agree
with the file. An .npz needs the --config of its networks. `python -m facegan_jax.sample
--workdir=DIR` then samples them, `evaluate` scores them, and `python -m facegan_jax.main` with
the command this one prints fine-tunes them.
"""

import os

from absl import app
from absl import flags

from configs import ffhq
from facegan_jax import main as training_main
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.system import command_line
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error
from facegan_jax.training import config_check

FLAGS = flags.FLAGS
flags.DEFINE_string('weights', None, 'An NVIDIA network pickle (.pkl) or an R3GAN snapshot '
                    '(.pkl), or an .npz of NVIDIA StyleGAN2 arrays keyed G/<state_dict key>, '
                    'optionally G_ema/<key> and D/<key>.')
# The training recipe (a configs/ffhq.py variant) of a pickle's run when no --config is given:
# NVIDIA's config F, which trained the published FFHQ networks; for R3GAN's snapshots R3GAN's
# FFHQ presets.
STYLEGAN2_BASE, R3GAN_BASES = 'stylegan2', {64: 'r3gan64', 256: 'r3gan256'}


def base_variant(weights: str) -> str:
  """The configs/ffhq.py variant whose recipe trains the networks of the pickle `weights`:
  STYLEGAN2_BASE, or for an R3GAN snapshot the R3GAN_BASES preset of 256 from 256x256 up, else
  of 64. STYLEGAN2_BASE too for a file that cannot be read: the command then says why."""
  try:
    networks = nvidia_pickle.read(weights)
  except UserError:
    return STYLEGAN2_BASE
  if networks.repo != nvidia_pickle.R3GAN:
    return STYLEGAN2_BASE
  resolution = networks.networks['G'].attributes.get('img_resolution', 0)
  return R3GAN_BASES[256 if resolution >= 256 else 64]


def parse_flags(argv):
  """main's flag parsing; a --weights=*.pkl without --config gets its `base_variant`."""
  weights = [arg.split('=', 1)[1] for arg in argv if arg.startswith('--weights=')]
  _COMMAND_LINE['config_given'] = any(arg.startswith('--config=') for arg in argv)
  _COMMAND_LINE['model_fields'] = tuple(
      arg.split('=', 1)[0][len('--config.model.'):] for arg in argv
      if arg.startswith('--config.model.'))
  if weights and weights[-1].endswith('.pkl') and not _COMMAND_LINE['config_given']:
    _COMMAND_LINE['base'] = base_variant(weights[-1])
    argv = argv[:1] + [f'--config={os.path.relpath(ffhq.__file__)}:{_COMMAND_LINE["base"]}'
                       ] + argv[1:]
  return training_main.parse_flags(argv)


def fine_tune_command(config, workdir: str, variant: str = STYLEGAN2_BASE) -> str:
  """The `main` command line that continues the run in `workdir`: configs/ffhq.py's `variant`
  and every field in which `config` differs from it."""
  base = config_check.flatten(ffhq.get_config(variant).to_dict())
  overrides = [f'--config.{field}={value}' for field, value in
               config_check.flatten(config.to_dict()).items() if base[field] != value]
  return ' '.join(['python -m facegan_jax.main', f'--config=configs/ffhq.py:{variant}',
                   *overrides, f'--workdir={workdir}'])


# Set by parse_flags: whether --config was given, the config.model fields that the command line
# sets, and the configs/ffhq.py variant given in its place.
_COMMAND_LINE = {'config_given': True, 'model_fields': (), 'base': STYLEGAN2_BASE}


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  if not FLAGS.weights:
    raise UserError('--weights is required: the .pkl or .npz of the NVIDIA networks, or the '
                    'R3GAN snapshot, to convert.')
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
    fine_tune = (fine_tune_command(config, FLAGS.workdir, _COMMAND_LINE['base'])
                 if not _COMMAND_LINE['config_given']
                 else 'python -m facegan_jax.main with the same --config and --workdir')
    print(f'Evaluate it with python -m facegan_jax.evaluate --workdir={FLAGS.workdir}, or '
          f'fine-tune it with {fine_tune} (to train another config from these networks, use '
          '--config.init.from_pkl).')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
