"""Converts pytorch-fid's FID Inception weights to the .npz that facegan_jax reads.

  wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
  pip install torch  # only this conversion needs it
  python -m facegan_jax.convert_inception --pth=pt_inception-2015-12-05-6726825d.pth \
      --out=~/.cache/facegan_jax/inception-2015-12-05.npz

The output path is config.eval.inception_weights's default; elsewhere, set that field. The
mapping of names and layouts is `inception.from_torch`; the result is checked against the
network before it is written.
"""

import os
import sys

from absl import app
from absl import flags

from facegan_jax import inception
from facegan_jax.errors import UserError

flags.DEFINE_string('pth', None, 'pytorch-fid weights: pt_inception-2015-12-05-6726825d.pth.')
flags.DEFINE_string('out', None, 'Where to write the .npz (config.eval.inception_weights).')
flags.mark_flags_as_required(['pth', 'out'])
FLAGS = flags.FLAGS


def convert(pth_path: str, out_path: str):
  """Reads the PyTorch state dict, writes the Flax variables, and loads them back as a check."""
  if not os.path.isfile(pth_path):
    raise UserError(f'--pth={pth_path!r} is not a file; download {inception.WEIGHTS_URL}')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError('converting the .pth needs PyTorch: pip install torch') from error
  state_dict = torch.load(pth_path, map_location='cpu', weights_only=True)
  variables = inception.from_torch({name: value.numpy() for name, value in state_dict.items()})
  out_path = os.path.expanduser(out_path)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  inception.save(out_path, variables)
  inception.load(out_path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  try:
    convert(FLAGS.pth, FLAGS.out)
  except UserError as error:
    sys.exit(f'error: {error}')
  print(f'Wrote {FLAGS.out}')


if __name__ == '__main__':
  app.run(main)
