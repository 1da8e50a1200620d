"""FID, KID and the k-NN measures between any two image sets (the `fid` command's work).

A set is one of (`load`):
- a folder (local or gs://) of .jpg/.jpeg/.png files, recursively, in sorted path order;
- a dataset zip (NVIDIA's layout, `data.dataset_archive`), its image members in sorted order;
- a .npy or .npz array (an .npz holding one array, or one named 'images'): uint8 [N, H, W, C] as
  they are, or float in [-1, 1] (a generator's output) quantised as a saved PNG would be
  (`images.to_uint8`), C = 1 or 3;
- a training workdir (it holds checkpoints/): its generator (`generation.RestoredGenerator`,
  the newest checkpoint) on evaluation's fixed latents (a conditional run's with labels drawn
  from its training labels), exactly as `evaluate` samples.

Files are decoded as a viewer shows them (`image_sources.to_8bit_upright`) to RGB; grayscale
and RGB give the same features, since the Inception repeats gray to RGB. Images of a set must
share one size unless `resolution` is given, which resizes each one's centered square to it
(Lanczos, as training data is prepared). The first set is the reference ('real' in the
measures: precision is the share of the second set inside the first's manifold, recall the
converse), the second the one judged. Features of image sets are cached by the digest of their
pixels, the Inception weights and the protocol (`fid.reference_features`), so the same images
are never featurised twice; a workdir's are computed each time, as `evaluate` does.
"""

import functools
import io
import os
import zipfile
from typing import Callable, NamedTuple, Optional

import numpy as np
from PIL import Image

from facegan_jax.data import dataset_archive
from facegan_jax.data import image_sources
from facegan_jax.data import images as images_lib
from facegan_jax.metrics import fid
from facegan_jax.runs import storage
from facegan_jax.sampling import generation
from facegan_jax.sampling import labels
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError

KINDS = ('folder', 'zip', 'array', 'workdir')
ARRAY_EXTENSIONS = ('.npy', '.npz')
# A float array whose values reach this is taken for [0, 255] pixels, not a generator's [-1, 1].
FLOAT_LIMIT = 2.0
FIX = 'give a folder of images, a dataset .zip, a .npy/.npz array or a training workdir'


class ImageSet(NamedTuple):
  """`images` uint8 [N, H, W, C], or a restored `generator` with its evaluation inputs
  `latents` [N, ...] that `generate` takes (fid.generator_inputs: a conditional run's labels
  ride with its latents)."""
  location: str
  kind: str
  images: Optional[np.ndarray] = None
  generate: Optional[Callable] = None
  generator: Optional[generation.RestoredGenerator] = None
  latents: Optional[np.ndarray] = None

  def __len__(self):
    return len(self.images if self.images is not None else self.latents)


def _exists(location: str) -> bool:
  return storage.path(location).exists() if storage.is_gcs(location) else os.path.exists(location)


def _is_dir(location: str) -> bool:
  return storage.path(location).is_dir() if storage.is_gcs(location) else os.path.isdir(location)


def kind_of(location: str, what: str) -> str:
  """Which of KINDS `location` is; UserError naming `what` (e.g. 'A') if it is none of them."""
  storage.check_reachable(location, what)
  if not location or not _exists(location):
    raise UserError(f'{what}={location!r} does not exist; {FIX}.')
  if location.lower().endswith(ARRAY_EXTENSIONS):
    return 'array'
  if _is_dir(location):
    return 'workdir' if _is_dir(f'{location.rstrip("/")}/checkpoints') else 'folder'
  if location.lower().endswith('.zip'):
    return 'zip'
  raise UserError(f'{what}={location!r} is a file that is not a .zip, .npy or .npz; {FIX}.')


def read_array(location: str, what: str) -> np.ndarray:
  """The uint8 [N, H, W, C] images of a .npy/.npz file (module docstring); nothing unpickled."""
  try:
    source = io.BytesIO(storage.read_bytes(location)) if storage.is_gcs(location) else location
    loaded = np.load(source, allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile) as error:
    raise UserError(f'{what}={location!r} is not a readable .npy/.npz array '
                    f'({type(error).__name__}: {error}); save it with numpy.save.') from error
  if isinstance(loaded, np.lib.npyio.NpzFile):
    with loaded:
      names = loaded.files
      if len(names) != 1 and 'images' not in names:
        raise UserError(f'{what}={location!r} holds arrays {names}; keep one, or name the '
                        "images 'images'.")
      array = loaded[names[0] if len(names) == 1 else 'images']
  else:
    array = loaded
  if array.ndim != 4 or array.shape[-1] not in (1, 3):
    raise UserError(f'{what}={location!r} has shape {array.shape}; use [N, H, W, C] images with '
                    'C = 1 or 3 (channels last).')
  if array.dtype == np.uint8:
    return array
  if not np.issubdtype(array.dtype, np.floating):
    raise UserError(f'{what}={location!r} has dtype {array.dtype}; use uint8 in [0, 255] or '
                    'float in [-1, 1].')
  if not np.isfinite(array).all() or np.abs(array).max(initial=0) >= FLOAT_LIMIT:
    raise UserError(f'{what}={location!r} is float with values outside [-1, 1] (or not finite);'
                    ' use float in [-1, 1] or uint8 in [0, 255].')
  return images_lib.to_uint8(array)


def _resized(image: np.ndarray, resolution: int) -> np.ndarray:
  """uint8 [H, W, C] -> its centered square resized to [resolution, resolution, C]."""
  square = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  return image_sources.resize_square(
      square.crop(image_sources.crop_box(square.height, square.width, 0)), resolution)


def _decode(encoded: bytes, name: str, what: str, resolution: int) -> np.ndarray:
  """One file's bytes -> uint8 [H, W, 3] (resized to `resolution` if not 0)."""
  if resolution:
    image = image_sources.prepare_image(encoded, crop=0, resolution=resolution, channels=3)
  else:
    try:
      with Image.open(io.BytesIO(encoded)) as opened:
        image = np.asarray(image_sources.to_8bit_upright(opened).convert('RGB'))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
      image = None
  if image is None:
    raise UserError(f'{what}: {name!r} is not a readable image (corrupt or not an image); '
                    'remove it from the set.')
  return image


def _stack(decoded: list[np.ndarray], names: list[str], what: str) -> np.ndarray:
  sizes = {image.shape[:2] for image in decoded}
  if len(sizes) > 1:
    first = decoded[0].shape[:2]
    other = next(i for i, image in enumerate(decoded) if image.shape[:2] != first)
    raise UserError(f'{what} holds images of several sizes ({names[0]!r}: {first[0]}x{first[1]},'
                    f' {names[other]!r}: {decoded[other].shape[0]}x{decoded[other].shape[1]});'
                    ' pass --resolution=R to resize each to R x R.')
  return np.stack(decoded)


def read_files(location: str, kind: str, what: str, num: int, resolution: int) -> np.ndarray:
  """The first `num` (0: all) images of a folder or dataset zip, uint8 [N, H, W, 3]."""
  if kind == 'zip':
    try:
      archive = dataset_archive.open_zip(location)
      names = dataset_archive.image_members(archive, location)
    except UserError as error:  # its message names config.data.path: say which set instead
      raise UserError(f'{what}: {str(error).replace("config.data.path=", "")}') from None
    names = names[:num or None]
    encoded = dataset_archive.read_members(archive, names)
  else:
    if storage.is_gcs(location):
      listed = list(storage.list_objects(location))
    else:
      listed = [os.path.relpath(os.path.join(root, name), location)
                for root, _, files in os.walk(location, followlinks=True) for name in files]
    names = sorted(name for name in listed
                   if name.lower().endswith(image_sources.IMAGE_EXTENSIONS))[:num or None]
    encoded = image_sources.read_files(location, names)
  if not names:
    raise UserError(f'{what}={location!r} holds no .jpg, .jpeg or .png images; {FIX}.')
  decode = lambda pair: _decode(pair[1], pair[0], what, resolution)
  decoded = list(image_sources.ordered_map(decode, zip(names, encoded), os.cpu_count() or 1))
  return _stack(decoded, names, what)


def load(location: str, what: str, *, num: int = 0, resolution: int = 0) -> ImageSet:
  """The set at `location` (module docstring), at most `num` images (0: all; a workdir: its
  config.eval.num_samples). UserError naming `what` for a missing, empty or unreadable set."""
  kind = kind_of(location, what)
  if kind == 'workdir':
    generator = generation.RestoredGenerator(location)
    config = generator.config
    generate, inputs = fid.generator_inputs(
        config, functools.partial(generation.generate, generator.generator),
        num or config.eval.num_samples, labels.training_labels(config))
    return ImageSet(location, kind, generate=generate, generator=generator, latents=inputs)
  if kind == 'array':
    images = read_array(location, what)[:num or None]
    if resolution and len(images):
      images = np.stack([_resized(image, resolution) for image in images])
  else:
    images = read_files(location, kind, what, num, resolution)
  if not len(images):
    raise UserError(f'{what}={location!r} holds no images; {FIX}.')
  return ImageSet(location, kind, images=images)


def features(image_set: ImageSet, extractor: fid.FeatureExtractor, stats_dir: str) -> np.ndarray:
  """Inception features [N, D] of the set: cached by content for images, computed for a
  generator exactly as `evaluate` does."""
  if image_set.images is not None:  # named by content alone: the same pixels share one file
    return fid.reference_features(image_set.images, extractor, stats_dir, 'images')
  return extractor.of_generator(image_set.generate, image_set.generator.variables,
                                image_set.latents)


def check_sizes(sets: dict, *, kid_subset_size: int, nearest_k: int):
  """UserError unless each set ({'A': ImageSet, ...}) has the images the measures need."""
  for what, image_set in sets.items():
    if len(image_set) < kid_subset_size:
      raise UserError(f'{what}={image_set.location!r} has {len(image_set)} images, fewer than '
                      f'KID\'s subset size {kid_subset_size}; pass --kid_subset_size='
                      f'{len(image_set)} or less, or use more images.')
    if len(image_set) <= nearest_k:
      raise UserError(f'{what}={image_set.location!r} has {len(image_set)} images; the k-NN '
                      f'measures need more than k={nearest_k}: use more images.')


def compare(a: ImageSet, b: ImageSet, extractor: fid.FeatureExtractor, *, stats_dir: str,
            kid_subsets: int, kid_subset_size: int, seed: int, precision_recall_k: int,
            density_coverage_k: int) -> dict:
  """{'fid', 'kid', 'precision', 'recall', 'density', 'coverage'} of set `b` against the
  reference `a` (`fid.scores`: KID's subsets drawn from `seed`), and the counts."""
  check_sizes({'A': a, 'B': b}, kid_subset_size=kid_subset_size,
              nearest_k=max(precision_recall_k, density_coverage_k))
  result = fid.scores(features(a, extractor, stats_dir), features(b, extractor, stats_dir),
                      kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed,
                      precision_recall_k=precision_recall_k,
                      density_coverage_k=density_coverage_k)
  return dict(result, num_a=len(a), num_b=len(b), protocol=extractor.protocol,
              inception=extractor.digest)


def compare_locations(location_a: str, location_b: str, eval_config, *, num: int = 0,
                      resolution: int = 0, seed: int = 0) -> dict:
  """The measures of set B against set A (`compare`) with `eval_config`'s Inception,
  protocol and measure settings."""
  if num < 0 or resolution < 0:
    raise UserError(f'--num={num} and --resolution={resolution} must be 0 or more.')
  for location, what in ((location_a, 'A'), (location_b, 'B')):
    kind_of(location, what)  # a wrong path stops before the weights load
  try:
    extractor = fid.make_extractor(eval_config, parallel.make_mesh())
  except UserError as error:  # its message names config.eval fields: this command's flags
    raise UserError(_as_flags(str(error))) from None
  set_a = load(location_a, 'A', num=num, resolution=resolution)
  set_b = load(location_b, 'B', num=num, resolution=resolution)
  return compare(set_a, set_b, extractor, stats_dir=eval_config.stats_dir,
                 kid_subsets=eval_config.kid_subsets, kid_subset_size=eval_config.kid_subset_size,
                 seed=seed, precision_recall_k=eval_config.precision_recall_k,
                 density_coverage_k=eval_config.density_coverage_k)


def _as_flags(message: str) -> str:
  """'config.eval.batch_size=...' -> '--batch_size=...' in a message of `fid.make_extractor`."""
  message = message.replace(' (or leave config.eval.every=0 to train without FID)', '')
  return message.replace('--config.eval.', '--').replace('config.eval.', '--')
