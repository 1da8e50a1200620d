"""NVIDIA StyleGAN2 networks as a run to sample and fine-tune:

    python -m facegan_jax.import_stylegan2 --weights=G.npz --config=configs/ffhq.py --workdir=DIR

writes step 0 of a run in DIR holding the networks of `--weights` (an .npz of their state_dicts
keyed G/, G_ema/ and D/; facegan_jax/pretrained/convert_stylegan2.py says how to export one) under the
config's model, which must match them. `python -m facegan_jax.sample --workdir=DIR` then samples
them, and `python -m facegan_jax.main` with the same --config and --workdir fine-tunes them.
No PyTorch is needed.
"""

from absl import app
from absl import flags

from facegan_jax import main as training_main
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.system import command_line
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('weights', None, 'An .npz of NVIDIA StyleGAN2 arrays keyed G/<state_dict '
                    'key>, optionally G_ema/<key> and D/<key>.')


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  if not FLAGS.weights:
    raise UserError('--weights is required: the .npz of the NVIDIA networks to convert.')
  convert_stylegan2.write_workdir(FLAGS.config, FLAGS.weights, FLAGS.workdir)
  print(f'Wrote step 0 of {FLAGS.workdir} from {FLAGS.weights}: sample it with python -m '
        f'facegan_jax.sample --workdir={FLAGS.workdir}, or fine-tune it with python -m '
        f'facegan_jax.main and the same --config and --workdir.')


if __name__ == '__main__':
  app.run(main, flags_parser=training_main.parse_flags)
