"""Prepared images on disk: one .npy per (source, split or folder, crop, resolution, subset).

A cache is `<cache_dir>/<source>-<digest of the key>.npy`, [N, H, W, C] uint8, opened with
`np.load(mmap_mode='r')` so that a batch reads only its own images from the page cache, plus a
`.json` beside it with the key (readable) and how many examples were unreadable, and, for a
labelled source, the labels of the kept images in `.labels.npy` (a row per image, in order).
All are written under temporary names and renamed into place, the images' .npy last: a crash
leaves either no cache or a complete one, never one that merely looks complete. Several processes building the
same cache at once each write their own temporary files; the last rename wins, with the same
content.
"""

import dataclasses
import hashlib
import itertools
import json
import os
import uuid
from typing import Iterable, Optional

import numpy as np
from absl import logging


NAMED_SKIPPED = 5  # unreadable examples named in the .json and the log; the others counted


@dataclasses.dataclass(frozen=True)
class Cached:
  """A prepared source: `images` [N, H, W, C] uint8 (read-only memmap); `skipped` unreadable,
  the first NAMED_SKIPPED of them named in `skipped_names`; `labels` [N, ...] of the images (as
  the source gave them) or None for an unlabelled source."""
  images: np.ndarray
  skipped: int
  skipped_names: tuple[str, ...] = ()
  labels: Optional[np.ndarray] = None


def cache_path(cache_dir: str, key: dict) -> str:
  """Where the cache of `key` (JSON-serialisable, with a 'source') lives in `cache_dir`."""
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f"{key['source']}-{digest}.npy")


def _temporary(path: str) -> str:
  return f'{path}.tmp-{uuid.uuid4().hex}'


def labels_path(path: str) -> str:
  """Where the labels of the cache at `path` live."""
  return path[:-len('.npy')] + '.labels.npy'


def load(path: str) -> Optional[Cached]:
  """The complete cache at `path`, or None if there is none."""
  if not (os.path.exists(path) and os.path.exists(path + '.json')):
    return None
  with open(path + '.json') as f:
    described = json.load(f)
  labels = np.load(labels_path(path)) if described.get('labelled') else None
  return Cached(np.load(path, mmap_mode='r'), described['skipped'],
                tuple(described.get('skipped_names', ())), labels)


def write(path: str, key: dict, examples: Iterable[Optional[np.ndarray]], capacity: int,
          image_shape: tuple[int, int, int], names: Optional[Iterable[str]] = None,
          labels: Optional[Iterable[np.ndarray]] = None) -> Cached:
  """Writes the first `capacity` non-None `examples` ([H, W, C] uint8 each) as the cache.

  None marks an unreadable example: it is skipped, counted and, the first few, named by its
  entry in `names` (default: its index). `labels`, aligned with `examples` (a class id or a
  vector each), are kept for the kept images. Returns the cache, memmapped.
  """
  names = iter(names) if names is not None else (f'example {i}' for i in itertools.count())
  labelled = labels is not None
  labels = iter(labels) if labelled else itertools.repeat(None)
  kept_labels = []
  skipped_names = []
  os.makedirs(os.path.dirname(path), exist_ok=True)
  partial = _temporary(path)
  images = np.lib.format.open_memmap(partial, mode='w+', dtype=np.uint8,
                                     shape=(capacity,) + tuple(image_shape))
  count = skipped = 0
  try:
    for example, name, label in zip(examples, names, labels):
      if count == capacity:
        break
      if example is None:
        skipped += 1
        if len(skipped_names) < NAMED_SKIPPED:
          skipped_names.append(name)
      else:
        images[count] = example
        kept_labels.append(label)
        count += 1
        if count % max(capacity // 10, 1) == 0:  # CelebA takes minutes: show that it moves
          logging.info('Prepared %d of %d images for %s.', count, capacity, path)
    images.flush()  # msync: the data is on disk before the rename makes it the cache
    if count < capacity:  # skipped files: keep only the rows that were written
      complete = _temporary(path)
      kept = np.lib.format.open_memmap(complete, mode='w+', dtype=np.uint8,
                                       shape=(count,) + tuple(image_shape))
      kept[:] = images[:count]
      kept.flush()  # on disk before the rename makes it the cache
      os.remove(partial)
      partial = complete
    del images
    if labelled:
      _write_labels(labels_path(path), np.asarray(kept_labels))
    described = _temporary(path + '.json')
    with open(described, 'w') as f:
      json.dump({'key': key, 'count': count, 'skipped': skipped, 'labelled': labelled,
                 'skipped_names': skipped_names}, f, indent=1, sort_keys=True)
    os.replace(described, path + '.json')
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)
  logging.info('Wrote %d prepared images to %s (%d unreadable skipped).', count, path, skipped)
  return load(path)


def _write_labels(path: str, labels: np.ndarray):
  partial = _temporary(path)
  with open(partial, 'wb') as f:
    np.save(f, labels)
  os.replace(partial, path)
