"""Every source of training images, behind one interface: `load_dataset(config)`.

A source turns `config.data` into one uint8 array [N, H, W, C] at the model's resolution and,
when config.data.labels asks for them, the labels of its images (`SOURCES`: name ->
function(data, image_shape, seed) -> Dataset):
- 'celeb_a' (TFDS), 'folder' and 'zip' (NVIDIA's dataset archive, `dataset_archive`) yield
  encoded files (JPEG/PNG bytes) in a fixed order that all
  go through `prepare_image` (decode 8- or 16-bit, grayscale, palette, RGBA/LA, CMYK and
  EXIF-rotated files alike (`to_8bit_upright`), convert to RGB or grayscale, take a centered
  square, resize it with Lanczos (antialiased) resampling) once, into an on-disk cache
  (`image_cache`) that later runs memory-map;
- 'lfw_subset' (the 100 real LFW faces that scikit-image ships) and 'toy2x2' (the seed's 2x2
  'slanted faces') are small enough to build in memory on every start.

Labels (config.data.labels): 'dataset_json' reads a folder's or zip's dataset.json (a class id
or a vector per image, `dataset_archive.parse_labels`), 'celeba_attributes' takes CelebA's 40
binary attributes (or config.data.attributes, a comma-separated choice) that TFDS delivers with
every image. They are prepared and cached with their images, row for row, and reach the model
as float32 [N, c_dim] (`model_labels`): one-hot class ids (c_dim = largest id + 1, as NVIDIA's
dataset does), or the vectors as they are (attributes as 0/1).

The crop rule, for any image of H x W pixels: a centered square of side min(crop, H, W), or
min(H, W) when crop is 0, with the odd pixel of an uneven margin left at the bottom/right.
For CelebA's aligned 178x218 faces the GAN papers' crop of 140 keeps the face and drops most
of the background; a folder of square thumbnails (FFHQ, already-cropped CelebA) smaller than
the crop is used whole.

Images may come from Google Cloud Storage: config.data.path=gs://bucket/faces (listed in one
request per 1000 files, read by many threads) and config.data.data_dir=gs://... for TFDS (which
reads it through TensorFlow). The prepared-image cache stays on each host's local disk
(`cache_dir`): it is memory-mapped, so that a batch reads only its own rows from the page cache,
which an object store cannot do; each host prepares its own copy once, with the same key.
"""

import collections
import concurrent.futures
import functools
import hashlib
import io
import itertools
import os
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

import ml_collections
import numpy as np
from absl import logging
from PIL import Image
from PIL import ImageOps

from facegan_jax.data import dataset_archive
from facegan_jax.data import image_cache
from facegan_jax.runs import storage
from facegan_jax.system.errors import UserError

IMAGE_EXTENSIONS = dataset_archive.IMAGE_EXTENSIONS

LABELS = ('none', 'dataset_json', 'celeba_attributes')

# The 40 binary attributes of CelebA (list_attr_celeba.txt), in TFDS's order, which is theirs.
CELEB_A_ATTRIBUTES = (
    '5_o_Clock_Shadow', 'Arched_Eyebrows', 'Attractive', 'Bags_Under_Eyes', 'Bald', 'Bangs',
    'Big_Lips', 'Big_Nose', 'Black_Hair', 'Blond_Hair', 'Blurry', 'Brown_Hair',
    'Bushy_Eyebrows', 'Chubby', 'Double_Chin', 'Eyeglasses', 'Goatee', 'Gray_Hair',
    'Heavy_Makeup', 'High_Cheekbones', 'Male', 'Mouth_Slightly_Open', 'Mustache', 'Narrow_Eyes',
    'No_Beard', 'Oval_Face', 'Pale_Skin', 'Pointy_Nose', 'Receding_Hairline', 'Rosy_Cheeks',
    'Sideburns', 'Smiling', 'Straight_Hair', 'Wavy_Hair', 'Wearing_Earrings', 'Wearing_Hat',
    'Wearing_Lipstick', 'Wearing_Necklace', 'Wearing_Necktie', 'Young')

# Part of a folder cache's key: 2 since 16-bit, transparent and EXIF-rotated images decode right,
# so that caches prepared before are prepared again.
DECODER_VERSION = 2

# Retries of each CelebA download request, with TFDS's exponential backoff from 0.2 s: 4 give up
# after 3 s when offline, where TFDS's default of 10 waits 3.4 minutes.
DOWNLOAD_RETRIES = 4

# Threads that read the files of a gs:// folder: requests wait on the network, not the CPU.
GCS_READ_THREADS = 32

# Where prepared images are cached when config.data.data_dir is in GCS and config.data.cache_dir
# is not set: the cache must be on local disk (module docstring).
LOCAL_CACHE_DIR = '~/.cache/facegan_jax/prepared_images'

# The files TFDS's celeb_a builder downloads (its checksums.tsv), which it also accepts when
# they are placed by hand in <data_dir>/downloads/manual/.
CELEB_A_FILES = ('img_align_celeba.zip', 'list_eval_partition.txt', 'list_attr_celeba.txt',
                 'list_landmarks_align_celeba.txt', 'identity_CelebA.txt')


def crop_box(height: int, width: int, crop: int) -> tuple[int, int, int, int]:
  """The centered square of the crop rule, as PIL's (left, top, right, bottom) in pixels."""
  side = min(height, width) if crop == 0 else min(crop, height, width)
  left, top = (width - side) // 2, (height - side) // 2
  return left, top, left + side, top + side


def to_8bit_upright(image: Image.Image) -> Image.Image:
  """`image` as its viewer shows it, in an 8-bit mode that `convert` maps faithfully to RGB/L.

  Applies the EXIF orientation; scales 16-bit grayscale (PIL's 'I;16*' and 'I' modes, which
  `convert('L')` would clip to white) to 8 bits; composites transparent images (RGBA, LA, PA,
  a palette with a transparent colour) onto white. Palette, 1-bit, CMYK and 16-bit RGB PNGs
  (which PIL reads as 8-bit RGB) are left to `convert`.
  """
  image = ImageOps.exif_transpose(image)
  if image.mode.startswith('I'):
    pixels = np.asarray(image).astype(np.float64) / 257.0  # 65535 -> 255
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), 'L')
  if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
    white = Image.new('RGBA', image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, image.convert('RGBA'))
  return image


def prepare_image(encoded: Optional[bytes], *, crop: int, resolution: int,
                  channels: int) -> Optional[np.ndarray]:
  """Decoded, cropped and resized image [resolution, resolution, channels] uint8.

  Returns None when `encoded` is None (a file that could not be read) or does not decode.
  """
  if encoded is None:
    return None
  try:
    with Image.open(io.BytesIO(encoded)) as image:
      image = to_8bit_upright(image).convert('RGB' if channels == 3 else 'L')
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
    return None  # PIL's ways of saying 'not an image', 'truncated' or 'corrupt'
  return resize_square(image.crop(crop_box(image.height, image.width, crop)), resolution)


def resize_square(image: Image.Image, resolution: int) -> np.ndarray:
  """A square PIL image -> [resolution, resolution, C] uint8, Lanczos (antialiased)."""
  resized = np.asarray(image.resize((resolution, resolution), Image.LANCZOS), np.uint8)
  return resized.reshape(resolution, resolution, -1)


def ordered_map(fn: Callable, items: Iterable, threads: int) -> Iterator:
  """fn(item) for each item, in order, computed by `threads` threads a few items ahead.

  Decoding and resizing release the GIL in PIL, so threads use every core; closing the
  iterator early (enough examples) stops after the few items already in flight.
  """
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 4 * threads:  # enough work queued to keep every thread busy
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def check_folder(path: str):
  """UserError unless `path` (config.data.path) is a directory (a gs:// one: its bucket can be
  listed; it holds files or not is `folder_versions`'s to say)."""
  if storage.is_gcs(path):
    storage.check_reachable(path, f'config.data.path={path}')
    return
  if not path or not os.path.isdir(path):
    raise UserError(f'config.data.path={path!r} is not a directory; set config.data.path to a '
                    f'folder of JPEG/PNG face images.')


def _walk(path: str) -> Iterator[str]:
  """Every file under the local directory `path`, recursively, relative to `path`."""
  for root, _, names in os.walk(path, followlinks=True):
    yield from (os.path.relpath(os.path.join(root, name), path) for name in names)


def folder_versions(path: str) -> dict[str, str]:
  """{name: version} of every JPEG/PNG file under `path`, recursively, in the order of the
  sorted names (paths relative to `path`). The version (size and modification time; in gs://,
  size and generation, from the one listing) changes whenever the file does."""
  check_folder(path)
  if storage.is_gcs(path):
    listed = storage.list_objects(path)
  else:
    listed = dict.fromkeys(_walk(path))
  files = sorted(name for name in listed if name.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise UserError(f'config.data.path={path!r} holds no .jpg, .jpeg or .png files; put the '
                    f'face images there (subfolders are searched too) or fix the path.')
  if storage.is_gcs(path):
    return {name: listed[name] for name in files}
  stats = {name: os.stat(os.path.join(path, name)) for name in files}
  return {name: f'{stat.st_size}\0{stat.st_mtime_ns}' for name, stat in stats.items()}


def folder_fingerprint(versions: dict[str, str]) -> str:
  """A digest of `folder_versions`: changes when any file does."""
  digest = hashlib.sha256()
  for name, version in versions.items():
    digest.update(f'{name}\0{version}\n'.encode())
  return digest.hexdigest()


def read_files(path: str, files: list[str]) -> Iterator[Optional[bytes]]:
  """The bytes of each file in `files` (relative to `path`), None for one that cannot be read;
  in order, those of a gs:// folder read by GCS_READ_THREADS threads."""
  if storage.is_gcs(path):
    yield from ordered_map(functools.partial(_read_object, path), files, GCS_READ_THREADS)
    return
  for name in files:
    try:
      with open(os.path.join(path, name), 'rb') as f:
        yield f.read()
    except OSError:
      yield None


def _read_object(folder: str, name: str) -> Optional[bytes]:
  try:
    return storage.read_bytes(f'{folder.rstrip("/")}/{name}')
  except OSError:
    return None


def _download_failed_message(data_dir: str) -> str:
  manual = os.path.join(data_dir, 'downloads', 'manual')
  return (f"could not download celeb_a (Google Drive's daily quota is a common cause); either "
          f"download {', '.join(CELEB_A_FILES)} from "
          f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into {manual}/ and run again, "
          f"or unpack the faces into a folder and set config.data.source='folder' and "
          f"config.data.path to it.")


def celeb_a_files(data_dir: str, split: str, max_examples: int,
                  attributes: tuple[str, ...] = ()) -> tuple[Iterator, int]:
  """CelebA's encoded aligned faces (178x218 JPEG) of `split`, in TFDS order, and their count.

  With `attributes` (names of CELEB_A_ATTRIBUTES), each item is a pair (JPEG bytes, uint8
  [len(attributes)] 0/1 values of those attributes) instead of the bytes alone.
  Downloads and prepares the dataset into `data_dir` if needed; keeps
  the first `max_examples` (0: all). Raises UserError with the manual route if the download
  fails.
  """
  # TensorFlow is imported only for this source: the others train without it.
  # pylint: disable=g-import-not-at-top
  import requests
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.download import download_manager
  from tensorflow_datasets.core.download import downloader
  # pylint: enable=g-import-not-at-top

  builder = tfds.builder('celeb_a', data_dir=data_dir)
  default_retries = downloader.MAX_RETRIES
  downloader.MAX_RETRIES = DOWNLOAD_RETRIES  # read by TFDS at each request; it has no option
  try:
    builder.download_and_prepare()
  except (download_manager.NonMatchingChecksumError, tfds.download.DownloadError,
          requests.exceptions.RequestException) as error:
    raise UserError(_download_failed_message(data_dir)) from error
  finally:
    downloader.MAX_RETRIES = default_retries
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=False,
                                 decoders={'image': tfds.decode.SkipDecoding()})
  except ValueError as error:
    raise UserError(f"config.data.split={split!r} is not a split of celeb_a; use 'train', "
                    f"'validation', 'test', 'all' or a sum like 'train+validation'.") from error
  if attributes:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    dataset = dataset.map(lambda example: (example['image'], tf.stack(
        [tf.cast(example['attributes'][name], tf.uint8) for name in attributes])))
  else:
    dataset = dataset.map(lambda example: example['image'])
  if max_examples:
    dataset = dataset.take(max_examples)
  return tfds.as_numpy(dataset), int(dataset.cardinality())


TOY_EXAMPLES = 4096


def toy_faces(seed: int, count: int = TOY_EXAMPLES) -> np.ndarray:
  """The 2x2 'slanted faces': dark (high) top-left and bottom-right, light others.

  Returns [count, 2, 2, 1] uint8; high pixels in [0.8, 1], low ones in [0, 0.2] (x 255), so
  every example passes `is_toy_face`.
  """
  rng = np.random.default_rng([seed, 2, 2])
  high = rng.uniform(0.8, 1.0, (count, 2))
  low = rng.uniform(0.0, 0.2, (count, 2))
  faces = np.stack([high[:, 0], low[:, 0], low[:, 1], high[:, 1]], axis=1).reshape(count, 2, 2, 1)
  return np.rint(faces * 255).astype(np.uint8)


def toy_face_score(images) -> np.ndarray:
  """The seed's rule on [B, 2, 2, 1] images in [-1, 1]: TL + BR - TR - BL on a [0, 1] scale."""
  pixels = (np.asarray(images, np.float32)[..., 0] + 1.0) / 2.0
  return pixels[:, 0, 0] + pixels[:, 1, 1] - pixels[:, 0, 1] - pixels[:, 1, 0]


def is_toy_face(images, threshold: float = 1.0) -> np.ndarray:
  """[B] bool: the seed's rule, score above the threshold (1 in the seed)."""
  return toy_face_score(images) > threshold


def lfw_faces(resolution: int) -> np.ndarray:
  """The 100 real 25x25 grayscale LFW faces that scikit-image ships: [100, res, res, 1] uint8."""
  try:
    from skimage import data as skimage_data  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError("config.data.source='lfw_subset' needs scikit-image; "
                    "install it with: pip install -e '.[demo]'") from error
  faces = skimage_data.lfw_subset()[:100]  # the rest are non-face patches
  faces = np.rint(faces * 255).astype(np.uint8)
  return np.stack([resize_square(Image.fromarray(face), resolution) for face in faces])


def data_dir(data: ml_collections.ConfigDict) -> str:
  """TFDS's data directory: config.data.data_dir, else $TFDS_DATA_DIR or ~/tensorflow_datasets."""
  if storage.is_gcs(data.data_dir):
    return data.data_dir
  if data.data_dir:
    return os.path.abspath(os.path.expanduser(data.data_dir))
  from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top
  return os.path.abspath(os.path.expanduser(constants.DATA_DIR))


def cache_dir(data: ml_collections.ConfigDict) -> str:
  """Where prepared images are cached, always on local disk (module docstring):
  config.data.cache_dir, else <data_dir>/facegan_jax_cache, or LOCAL_CACHE_DIR when data_dir
  is in GCS."""
  if storage.is_gcs(data.cache_dir):
    raise UserError(f'config.data.cache_dir={data.cache_dir!r} must be on local disk (the cache '
                    'is memory-mapped); use a local directory, or leave it empty.')
  if data.cache_dir:
    return os.path.abspath(os.path.expanduser(data.cache_dir))
  if storage.is_gcs(data_dir(data)):
    return os.path.expanduser(LOCAL_CACHE_DIR)
  return os.path.join(data_dir(data), 'facegan_jax_cache')


def _check_prepared_fields(data: ml_collections.ConfigDict):
  for field in ('crop', 'max_examples', 'threads'):
    if data[field] < 0:
      raise UserError(f'config.data.{field}={data[field]} must be 0 or more.')


def attribute_names(data: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The CelebA attributes of config.data.attributes ('' or 'all': all 40), checked."""
  if data.attributes in ('', 'all'):
    return CELEB_A_ATTRIBUTES
  names = tuple(name.strip() for name in data.attributes.split(','))
  unknown = [name for name in names if name not in CELEB_A_ATTRIBUTES]
  if unknown or len(set(names)) != len(names):
    problem = f'{unknown[0]!r} is not a CelebA attribute' if unknown else 'a name repeats'
    raise UserError(f'config.data.attributes={data.attributes!r}: {problem}; use \'\' for all '
                    f'40 or a comma-separated choice of {", ".join(CELEB_A_ATTRIBUTES)}.')
  return names


def _label_key(data: ml_collections.ConfigDict) -> dict:
  """What the labels add to a cache's key; nothing without labels, so that unlabelled caches
  keep the key (and the files) they had before labels existed."""
  if data.labels == 'none':
    return {}
  key = {'labels': data.labels}
  if data.labels == 'celeba_attributes':
    key['attributes'] = list(attribute_names(data))
  return key


def _every_image_readable(examples: Iterator, names: list[str], path: str) -> Iterator:
  """`examples`, stopping with UserError at the first unreadable one: a dataset archive is
  made whole by a tool, so an undecodable member means a damaged archive, not a stray file."""
  for example, name in zip(examples, names):
    if example is None:
      raise UserError(f'config.data.path={path!r}: member {name!r} is not a readable image '
                      '(corrupt or not an image); remake the archive or remove the member.')
    yield example


def prepare_source(data: ml_collections.ConfigDict, image_shape) -> image_cache.Cached:
  """The 'celeb_a', 'folder' or 'zip' images of `config.data` at `image_shape` (res, res,
  channels), and their labels if config.data.labels asks, from the cache or prepared into it.

  Returns the memmapped images [N, res, res, channels] uint8, their labels as the source gives
  them (class ids [N] or vectors [N, D]; None without labels) and the number of unreadable
  files left out; logs where they came from and warns about skipped files.
  """
  _check_prepared_fields(data)
  resolution, _, channels = image_shape
  key = dict(source=data.source, crop=data.crop, resolution=resolution, channels=channels,
             max_examples=data.max_examples, **_label_key(data))
  archive = None
  if data.source == 'celeb_a':
    key['split'] = data.split
    name = f'celeb_a/{data.split}'
  elif data.source == 'zip':
    archive = dataset_archive.open_zip(data.path)
    files = dataset_archive.image_members(archive, data.path)
    name = data.path if storage.is_gcs(data.path) else os.path.abspath(data.path)
    key.update(path=name, fingerprint=dataset_archive.fingerprint(archive),
               decoder=DECODER_VERSION)
  else:
    versions = folder_versions(data.path)
    files = list(versions)
    name = data.path if storage.is_gcs(data.path) else os.path.abspath(data.path)
    labels_text = (dataset_archive.folder_labels_text(data.path)
                   if data.labels == 'dataset_json' else None)
    key.update(path=name, fingerprint=folder_fingerprint(versions), decoder=DECODER_VERSION)
    if labels_text is not None:
      key['labels_digest'] = hashlib.sha256(labels_text).hexdigest()
  path = image_cache.cache_path(cache_dir(data), key)
  cached = image_cache.load(path)
  if cached is not None:
    logging.info('Read %d prepared images of %s from %s.', len(cached.images), name, path)
  else:
    labels = None
    if data.source == 'celeb_a':
      attributes = attribute_names(data) if data.labels == 'celeba_attributes' else ()
      encoded, capacity = celeb_a_files(data_dir(data), data.split, data.max_examples,
                                        attributes)
      if attributes:  # one pass over TFDS, split into the images and their labels
        pairs, copy = itertools.tee(encoded)
        encoded, labels = (image for image, _ in pairs), (label for _, label in copy)
      names = None  # examples are named by their index in the split
    else:
      if data.source == 'zip':
        encoded = dataset_archive.read_members(archive, files)
        labels_text = (dataset_archive.zip_labels_text(archive)
                       if data.labels == 'dataset_json' else None)
      else:
        encoded = read_files(data.path, files)
      if data.labels == 'dataset_json':
        labels = dataset_archive.parse_labels(labels_text, files, f'config.data.path={name!r}')
      capacity = min(len(files), data.max_examples or len(files))
      names = files
    prepare = functools.partial(prepare_image, crop=data.crop, resolution=resolution,
                                channels=channels)
    examples = ordered_map(prepare, encoded, data.threads or os.cpu_count())
    if data.source == 'zip':
      examples = _every_image_readable(examples, files, data.path)
    cached = image_cache.write(path, key, examples, capacity, image_shape, names, labels)
  if cached.skipped:
    named = ', '.join(cached.skipped_names)
    more = cached.skipped - len(cached.skipped_names)
    logging.warning('Skipped %d unreadable file(s) of %s (not an image, truncated or corrupt): '
                    '%s%s.', cached.skipped, name, named, f' and {more} more' if more else '')
  if not len(cached.images):
    raise UserError(f'config.data.source={data.source!r} gave no readable images from {name}; '
                    f'check that the files are JPEG or PNG images.')
  return cached


class Dataset(NamedTuple):
  """`images` [N, H, W, C] uint8; `labels` float32 [N, c_dim] (`model_labels`) or None."""
  images: np.ndarray
  labels: Optional[np.ndarray]


def _prepared(data, image_shape, seed) -> Dataset:
  del seed  # the prepared sources are files
  cached = prepare_source(data, image_shape)
  return Dataset(cached.images, cached.labels)


SOURCES = {
    'toy2x2': lambda data, image_shape, seed: Dataset(
        toy_faces(seed)[:data.max_examples or None], None),
    'lfw_subset': lambda data, image_shape, seed: Dataset(
        lfw_faces(image_shape[0])[:data.max_examples or None], None),
    'celeb_a': _prepared,
    'folder': _prepared,
    'zip': _prepared,
}

# The sources whose labels each config.data.labels reads.
LABELLED_SOURCES = {'dataset_json': ('folder', 'zip'), 'celeba_attributes': ('celeb_a',)}


def check_data_config(data: ml_collections.ConfigDict):
  """UserError unless `data.source` and `data.labels` are known and fit each other and, for
  'folder', `data.path` is a directory."""
  if data.source not in SOURCES:
    raise UserError(f'config.data.source={data.source!r} is unknown; use one of {tuple(SOURCES)}.')
  if data.labels not in LABELS:
    raise UserError(f'config.data.labels={data.labels!r} is unknown; use one of {LABELS}.')
  if data.labels != 'none' and data.source not in LABELLED_SOURCES[data.labels]:
    raise UserError(f'config.data.labels={data.labels!r} needs config.data.source in '
                    f'{LABELLED_SOURCES[data.labels]}, not {data.source!r}; set '
                    "config.data.labels='none' or change the source.")
  if data.labels == 'celeba_attributes':
    attribute_names(data)
  if data.source == 'folder':
    check_folder(data.path)
  if data.source == 'zip':
    dataset_archive.check_path(data.path)


def model_labels(raw: np.ndarray) -> np.ndarray:
  """Labels as the model sees them, float32 [N, c_dim]: class ids [N] int -> one-hot with c_dim
  = the largest id + 1 (NVIDIA's rule); vectors [N, D] (attributes: 0/1) -> float32 as they are."""
  if raw.ndim == 1:
    return np.eye(int(raw.max()) + 1 if len(raw) else 0, dtype=np.float32)[raw]
  return raw.astype(np.float32)


def _check_c_dim(config: ml_collections.ConfigDict, labels: Optional[np.ndarray]):
  """UserError unless config.model.c_dim is the labels' width (0 without labels)."""
  c_dim = 0 if labels is None else labels.shape[1]
  if config.model.get('c_dim', 0) != c_dim:  # 0 in a model config without the field
    given = (f"config.data.labels={config.data.labels!r} gives {c_dim} label values per image"
             if labels is not None else "config.data.labels='none' gives no labels")
    raise UserError(f'{given}, but config.model.c_dim={config.model.get("c_dim", 0)}; set '
                    f'config.model.c_dim={c_dim}.')


def load_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """All training images of `config.data` at `config.model`'s resolution and channels,
  [N, H, W, C] uint8 (prepared sources: a read-only memmap of their cache), and their labels,
  float32 [N, c_dim], or None when config.data.labels is 'none'. UserError if config.model's
  shape or c_dim does not fit them."""
  source = config.data.source
  check_data_config(config.data)
  expected = (config.model.resolution, config.model.resolution, config.model.channels)
  images, raw_labels = SOURCES[source](config.data, expected, config.seed)
  if images.shape[1:] != expected:
    raise UserError(f'config.data.source={source!r} gives images of shape {images.shape[1:]}, '
                    f'but config.model expects {expected}; set config.model.resolution and '
                    f'config.model.channels to match.')
  labels = None if raw_labels is None else model_labels(raw_labels)
  _check_c_dim(config, labels)
  return Dataset(images, labels)


def load_images(config: ml_collections.ConfigDict) -> np.ndarray:
  """The images of `load_dataset(config)`: [N, H, W, C] uint8."""
  return load_dataset(config).images
