"""A StyleGAN2 run's networks for NVIDIA's code:

    python -m facegan_jax.export_stylegan2 --workdir=DIR [--step=N] --out=networks.pt

writes G, G_ema (the run's EMA generator, or G without one) and D of the checkpoint under
NVIDIA's state_dict names and layouts (NVlabs stylegan3 / stylegan2-ada-pytorch), so that their
networks, built with the run's configuration (`python -m facegan_jax.import_stylegan2` reads it
back the same way), take them with `load_state_dict`: an .npz keyed G/<name>, D/<name> and
G_ema/<name>, or a .pt that `torch.load` reads as {'G': state_dict, 'D': ..., 'G_ema': ...}.
No PyTorch is needed to write either.
"""

from absl import app
from absl import flags

from facegan_jax.pretrained import export_stylegan2
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Workdir of a StyleGAN2 run (holds checkpoints/).')
flags.DEFINE_integer('step', None, 'Checkpoint step to export; default: the newest.')
flags.DEFINE_string('out', None, 'Path of the .npz or .pt to write.')
flags.mark_flags_as_required(['workdir', 'out'])


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  quiet_log.install(FLAGS.verbosity)
  if not FLAGS.out.endswith(('.npz', '.pt')):
    raise UserError(f'--out={FLAGS.out}: write .npz (numpy) or .pt (torch.load); the name must '
                    'end with one of them.')
  step, arrays = export_stylegan2.read_run(FLAGS.workdir, FLAGS.step)
  export_stylegan2.write(FLAGS.out, arrays)
  print(f'Wrote {FLAGS.out}: G, G_ema and D of step {step} of {FLAGS.workdir} as NVIDIA '
        'state_dicts.')


if __name__ == '__main__':
  app.run(main)
