"""Face photos from TFDS `celeb_a` and from image folders, center-cropped and resized once.

Both sources yield encoded image files (JPEG/PNG bytes) in a fixed order, and both go through
the same `prepare_image`: decode (8- or 16-bit, grayscale, palette, RGBA/LA, CMYK, EXIF
rotation: `to_8bit_upright`), convert to RGB (or grayscale for 1-channel models), take a
centered square, resize it with Lanczos (antialiased) resampling to the model resolution.

The crop rule, for any image of H x W pixels: a centered square of side min(crop, H, W), or
min(H, W) when crop is 0, with the odd pixel of an uneven margin left at the bottom/right.
For CelebA's aligned 178x218 faces the GAN papers' crop of 140 keeps the face and drops most
of the background; a folder of square thumbnails (FFHQ, already-cropped CelebA) smaller than
the crop is used whole.
"""

import collections
import concurrent.futures
import hashlib
import io
import os
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from PIL import Image
from PIL import ImageOps

from facegan_jax.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')

# Part of a folder cache's key: 2 since 16-bit, transparent and EXIF-rotated images decode right,
# so that caches prepared before are prepared again.
DECODER_VERSION = 2

# Retries of each CelebA download request, with TFDS's exponential backoff from 0.2 s: 4 give up
# after 3 s when offline, where TFDS's default of 10 waits 3.4 minutes.
DOWNLOAD_RETRIES = 4

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
  square = image.crop(crop_box(image.height, image.width, crop))
  resized = square.resize((resolution, resolution), Image.LANCZOS)
  return np.asarray(resized, np.uint8).reshape(resolution, resolution, channels)


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
  """UserError unless `path` (config.data.path) is a directory."""
  if not path or not os.path.isdir(path):
    raise UserError(f'config.data.path={path!r} is not a directory; set config.data.path to a '
                    f'folder of JPEG/PNG face images.')


def folder_files(path: str) -> list[str]:
  """Every JPEG/PNG file under `path`, recursively, as sorted paths relative to `path`."""
  check_folder(path)
  files = []
  for root, _, names in os.walk(path, followlinks=True):
    files.extend(os.path.relpath(os.path.join(root, name), path) for name in names
                 if name.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise UserError(f'config.data.path={path!r} holds no .jpg, .jpeg or .png files; put the '
                    f'face images there (subfolders are searched too) or fix the path.')
  return sorted(files)


def folder_fingerprint(path: str, files: list[str]) -> str:
  """A digest of the names, sizes and modification times of `files`: changes when they do."""
  digest = hashlib.sha256()
  for name in files:
    stat = os.stat(os.path.join(path, name))
    digest.update(f'{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
  return digest.hexdigest()


def read_files(path: str, files: list[str]) -> Iterator[Optional[bytes]]:
  """The bytes of each file in `files` (relative to `path`), None for one that cannot be read."""
  for name in files:
    try:
      with open(os.path.join(path, name), 'rb') as f:
        yield f.read()
    except OSError:
      yield None


def _download_failed_message(data_dir: str) -> str:
  manual = os.path.join(data_dir, 'downloads', 'manual')
  return (f"could not download celeb_a (Google Drive's daily quota is a common cause); either "
          f"download {', '.join(CELEB_A_FILES)} from "
          f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into {manual}/ and run again, "
          f"or unpack the faces into a folder and set config.data.source='folder' and "
          f"config.data.path to it.")


def celeb_a_files(data_dir: str, split: str, max_examples: int) -> tuple[Iterator[bytes], int]:
  """CelebA's encoded aligned faces (178x218 JPEG) of `split`, in TFDS order, and their count.

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
  dataset = dataset.map(lambda example: example['image'])
  if max_examples:
    dataset = dataset.take(max_examples)
  return tfds.as_numpy(dataset), int(dataset.cardinality())
