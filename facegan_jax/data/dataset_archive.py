"""NVIDIA's dataset layout: one .zip of images with an optional `dataset.json` of labels.

stylegan2-ada-pytorch's and stylegan3's `dataset_tool.py` write a dataset as a zip (or a folder)
of PNGs, `00000/img00000000.png`, ..., and at its root a `dataset.json`:
`{"labels": [["00000/img00000000.png", 6], ...]}` (a class id per image, or a list of numbers)
or `{"labels": null}`. StyleGAN2-ADA, StyleGAN3, R3GAN and EDM train from it; their
`ImageFolderDataset` takes the members whose names end in an image extension, in sorted order,
and the label of each from dataset.json. This module reads such an archive the same way: the
.jpg/.jpeg/.png members, nested folders included, in sorted name order.

Members are read into memory one at a time by name (`zipfile`), never extracted to a path, so a
member named '../x' cannot write anywhere (no zip-slip); a member larger than MAX_MEMBER_BYTES
is not read (no zip bomb). An archive in gs:// is read whole into memory first (an object store
cannot seek within it cheaply); a local one is read where it lies.

The fingerprint of an archive is a digest of every member's name, size and CRC-32 (of its
uncompressed bytes), from the central directory: it changes when any member's contents do,
without reading the archive.
"""

import hashlib
import io
import json
import os
import zipfile
from typing import Iterator, Optional

import numpy as np

from facegan_jax.runs import storage
from facegan_jax.system.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
LABELS_FILE = 'dataset.json'
MAX_MEMBER_BYTES = 1 << 28  # 256 MiB: far above any image of a face dataset


def check_path(path: str):
  """UserError unless `path` (config.data.path) is a local file, or a gs:// one whose bucket
  can be listed."""
  if storage.is_gcs(path):
    storage.check_reachable(path, f'config.data.path={path}')
  elif not path or not os.path.isfile(path):
    raise UserError(f'config.data.path={path!r} is not a file; set config.data.path to a '
                    "dataset .zip (as NVIDIA's dataset_tool.py writes).")


def open_zip(path: str) -> zipfile.ZipFile:
  """The zip archive at `path` (config.data.path; local or gs://), opened for reading.

  UserError if it is missing or not a zip archive.
  """
  check_path(path)
  where = f'config.data.path={path!r}'
  source = path
  if storage.is_gcs(path):
    try:
      source = io.BytesIO(storage.read_bytes(path))
    except OSError as error:
      raise UserError(f'{where} cannot be read ({type(error).__name__}); set config.data.path '
                      'to a dataset .zip.') from error
  try:
    return zipfile.ZipFile(source)
  except (zipfile.BadZipFile, OSError) as error:
    raise UserError(f'{where} is not a zip archive ({error}); make one with NVIDIA\'s '
                    'dataset_tool.py or `zip -r`, or use config.data.source=\'folder\'.') from error


def image_members(archive: zipfile.ZipFile, path: str) -> list[str]:
  """The names of the archive's image members (.jpg/.jpeg/.png, any folder), sorted."""
  names = sorted(info.filename for info in archive.infolist()
                 if not info.is_dir() and info.filename.lower().endswith(IMAGE_EXTENSIONS))
  if not names:
    raise UserError(f'config.data.path={path!r} holds no .jpg, .jpeg or .png members; put the '
                    'images in the archive or fix the path.')
  return names


def fingerprint(archive: zipfile.ZipFile) -> str:
  """A digest of every member's name, size and CRC-32: changes when any member does."""
  digest = hashlib.sha256()
  for info in sorted(archive.infolist(), key=lambda info: info.filename):
    digest.update(f'{info.filename}\0{info.file_size}\0{info.CRC}\n'.encode())
  return digest.hexdigest()


def read_member(archive: zipfile.ZipFile, name: str) -> Optional[bytes]:
  """The uncompressed bytes of member `name`, or None if it is too large or damaged."""
  if archive.getinfo(name).file_size > MAX_MEMBER_BYTES:
    return None
  try:
    return archive.read(name)
  except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError):
    return None  # a CRC mismatch, a truncated member, an unsupported compression or encryption


def read_members(archive: zipfile.ZipFile, names: list[str]) -> Iterator[Optional[bytes]]:
  """The bytes of each member in `names`, in order (None for one that cannot be read)."""
  for name in names:
    yield read_member(archive, name)


def zip_labels_text(archive: zipfile.ZipFile) -> Optional[bytes]:
  """The archive's dataset.json (at its root), or None if it has none."""
  try:
    return archive.read(LABELS_FILE)
  except KeyError:
    return None


def folder_labels_text(folder: str) -> Optional[bytes]:
  """The dataset.json at the root of `folder` (local or gs://), or None if there is none."""
  location = f'{folder.rstrip("/")}/{LABELS_FILE}'
  try:
    return storage.read_bytes(location)
  except (FileNotFoundError, OSError):
    return None


def parse_labels(text: Optional[bytes], images: list[str], where: str) -> np.ndarray:
  """The labels of `images` (names as in the archive or folder) from dataset.json's `text`.

  Returns int64 [N] class ids when every label is an integer, float32 [N, D] when every label
  is a list of D numbers (NVIDIA's two kinds), in the order of `images`. UserError, naming
  `where` (the dataset), for a missing file, labels that are null, not JSON, of mixed kinds,
  that name a file the dataset lacks, or that leave an image without a label.
  """
  fix = "set config.data.labels='none' to train without labels"
  if text is None:
    raise UserError(f'{where} has no {LABELS_FILE} at its root; add one '
                    f'({{"labels": [["00000/img00000000.png", 6], ...]}}) or {fix}.')
  try:
    entries = json.loads(text)['labels']
  except (ValueError, TypeError, KeyError) as error:
    raise UserError(f'{where}: {LABELS_FILE} is not {{"labels": [[file, label], ...]}} '
                    f'({type(error).__name__}); rewrite it or {fix}.') from error
  if entries is None:
    raise UserError(f'{where}: {LABELS_FILE} has "labels": null (an unlabelled dataset); {fix}.')
  if not isinstance(entries, list) or not all(
      isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
      for entry in entries):
    raise UserError(f'{where}: {LABELS_FILE}\'s labels must be a list of [file, label] pairs; '
                    f'rewrite it or {fix}.')
  labels = {name.replace('\\', '/'): label for name, label in entries}
  missing = sorted(set(labels) - set(images))
  if missing:
    raise UserError(f'{where}: {LABELS_FILE} labels {missing[0]!r}, which is not an image of '
                    f'the dataset ({len(missing)} such name(s)); fix the names or {fix}.')
  unlabelled = [name for name in images if name not in labels]
  if unlabelled:
    raise UserError(f'{where}: image {unlabelled[0]!r} has no label in {LABELS_FILE} '
                    f'({len(unlabelled)} such image(s)); label every image or {fix}.')
  ordered = [labels[name] for name in images]
  if all(isinstance(label, int) and not isinstance(label, bool) and label >= 0
         for label in ordered):
    return np.asarray(ordered, np.int64)
  vectors = [label for label in ordered if isinstance(label, list) and all(
      isinstance(value, (int, float)) and not isinstance(value, bool) for value in label)]
  if len(vectors) == len(ordered) and len({len(vector) for vector in vectors}) == 1:
    return np.asarray(ordered, np.float32)
  raise UserError(f'{where}: {LABELS_FILE}\'s labels must all be class ids (integers >= 0) or '
                  f'all lists of as many numbers; they are of mixed kinds. Fix them or {fix}.')
