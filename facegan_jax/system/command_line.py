"""The commands' flags checked before any work: one-line flag errors, output paths, numbers,
and input files that are not what a flag asks for."""

import contextlib
import math
import os
import re
import zipfile
import zlib

import numpy as np
from absl import flags

from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_with


def parse_flags(argv):
  """absl's flag parsing (for app.run's flags_parser) with a bad or missing flag as one line,
  'error: ...' and exit code 1, instead of absl's FATAL text."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    positional = [arg for arg in argv[1:] if not arg.startswith('-')]
    if positional:  # a missing --workdir is most likely this one, given without its flag
      exit_with(_unexpected(positional[0]))
    missing = re.search(r'Flag --(\w+) must have a value other than None', str(error))
    message = (f'--{missing.group(1)} is required' if missing
               else str(error).splitlines()[0].rstrip('.'))
    exit_with(UserError(f'{message}; see --help.'))


def check_no_arguments(argv):
  """UserError for positional arguments (the commands take only --flags)."""
  if len(argv) > 1:
    raise _unexpected(argv[1])


def _unexpected(argument: str) -> UserError:
  return UserError(f'unexpected argument {argument!r}: this command takes only --flags, e.g. '
                   f'--workdir={argument}; see --help.')


def check_output_file(flag: str, location: str, suffixes: tuple[str, ...] = ('.png',),
                      create_folder: bool = False):
  """UserError, before anything is computed, unless --`flag`=`location` can be written as a file
  of one of `suffixes`: not a directory, in a folder that exists (or, with `create_folder`, that
  can be made: no file in its way). gs:// objects: only the suffix (runs.storage checks
  buckets)."""
  if not location:
    raise UserError(f'--{flag} is empty; give a file name such as out{suffixes[0]}.')
  local = os.path.expanduser(location)
  if not location.startswith('gs://') and os.path.isdir(local):
    raise UserError(f'--{flag}={location} is a directory; give a file name in it, e.g. '
                    f'--{flag}={os.path.join(location, "out" + suffixes[0])}.')
  if not location.lower().endswith(suffixes):
    stem = os.path.splitext(location)[0]
    raise UserError(f'--{flag}={location}: this command writes {suffixes[0][1:].upper()} '
                    f'files; name it {stem}{suffixes[0]}.')
  if not location.startswith('gs://'):
    _check_folder(flag, location, os.path.dirname(os.path.abspath(local)), create_folder)


def check_output_dir(flag: str, location: str):
  """UserError unless --`flag`=`location` is a directory, or can be made as one in a folder
  that exists."""
  if location.startswith('gs://'):
    return
  location = os.path.expanduser(location)
  if os.path.exists(location) and not os.path.isdir(location):
    raise UserError(f'--{flag}={location} is a file, not a directory; give a directory (it is '
                    'made if it does not exist).')
  if not os.path.isdir(location):
    _check_folder(flag, location, os.path.dirname(os.path.abspath(location)), False)


def _check_folder(flag: str, location: str, folder: str, create: bool):
  blocked = folder
  while blocked and not os.path.exists(blocked):
    blocked = os.path.dirname(blocked)
  if blocked and not os.path.isdir(blocked):
    raise UserError(f'--{flag}={location}: {blocked} is a file, not a folder; choose another '
                    'path.')
  if not create and not os.path.isdir(folder):
    raise UserError(f'--{flag}={location}: the folder {folder} does not exist; create it '
                    f'(mkdir -p {folder}) or choose another path.')


def check_finite(flag: str, value: float, example: str):
  """UserError unless `value` is a finite number."""
  if not math.isfinite(value):
    raise UserError(f'--{flag}={value} is not a finite number; use e.g. --{flag}={example}.')


def check_range(flag: str, value: int, minimum: int, maximum: int | None = None):
  """UserError unless minimum <= `value` (<= maximum)."""
  if value < minimum or (maximum is not None and value > maximum):
    bounds = f'from {minimum} to {maximum}' if maximum is not None else f'at least {minimum}'
    raise UserError(f'--{flag}={value} is out of range; use a number {bounds}.')


_SIGNATURES = ((b'\x89PNG', 'a PNG image'), (b'\xff\xd8\xff', 'a JPEG image'),
               (b'\x93NUMPY', 'a single NumPy array (.npy)'), (b'\x80', 'a Python pickle'),
               (b'\x89HDF', 'an HDF5 file'), (b'\x1f\x8b', 'a gzip file'))


def describe_file(file) -> str:
  """What a file (a path or a binary file object) is, from its first bytes: 'an empty file',
  'a PNG image', 'a text file', 'a zip archive of PyTorch tensors', ..., else 'a file of unknown
  format'."""
  with _opened(file) as f:
    head = f.read(512)
    f.seek(0)
    names = zipfile.ZipFile(f).namelist() if zipfile.is_zipfile(f) else None
  if not head:
    return 'an empty file'
  for signature, kind in _SIGNATURES:
    if head.startswith(signature):
      return kind
  if names is not None:
    if any(name.endswith('data.pkl') for name in names):
      return 'a zip archive of PyTorch tensors'
    if names and all(name.endswith('.npy') for name in names):
      return 'an .npz of arrays'
    return 'a zip archive'
  if head.startswith(b'PK\x03\x04'):
    return 'a damaged or truncated zip archive'
  try:
    head.decode('utf-8')
  except UnicodeDecodeError:
    return 'a file of unknown format'
  return 'a file of unknown format' if b'\0' in head else 'a text file'


def _opened(file):
  """A context of `file` as a binary file object: a path is opened, a file object rewound."""
  if isinstance(file, (str, os.PathLike)):
    return open(file, 'rb')
  file.seek(0)
  return contextlib.nullcontext(file)


def read_npz(file, source: str, expected: str) -> dict[str, np.ndarray]:
  """Every array of an .npz (a local path or a binary file object), read without pickles.
  UserError '`source` is <what it is>, not `expected`.' when it is not an .npz of numeric
  arrays (empty, text, an image, a single .npy, a damaged archive, pickled objects)."""
  try:
    with _opened(file) as f:
      loaded = np.load(f)
      if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError('a single array')
      with loaded:
        result = {name: loaded[name] for name in loaded.files}
  except (EOFError, ValueError, OSError, zipfile.BadZipFile, zlib.error) as error:
    raise UserError(f'{source} is {_npz_kind(file, error)}, not {expected}.') from error
  if not all(isinstance(value, np.ndarray) and value.dtype.kind in 'biuf'
             for value in result.values()):
    raise UserError(f'{source} is {_npz_kind(file)}, not {expected}.')
  return result


def _npz_kind(file, error: Exception | None = None) -> str:
  """What a file that np.load could not read as numeric arrays is."""
  kind = describe_file(file)
  if kind != 'an .npz of arrays':
    return kind
  if error is None or 'allow_pickle' in str(error):
    return 'an .npz holding pickled objects'
  return f'a damaged .npz ({type(error).__name__})'
