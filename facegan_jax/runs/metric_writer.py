"""What a run reports: TensorBoard events and metrics.jsonl in the workdir, and the log line.

Only process 0 writes (the others hold a writer that does nothing), so a multi-host run leaves
one set of files. TensorBoard events come from tensorboardX, which needs neither TensorFlow
nor PyTorch (protobuf and numpy only): `tensorboard --logdir=WORKDIR` shows them. In a gs://
workdir, where objects cannot be appended to, the events file is kept in memory and its object
rewritten at each flush that has new events (every 120 s and at the end), and metrics.jsonl is
rewritten at each line (`storage`).
"""

import io
import json
import math
import os
import sys

import numpy as np


def _import_tensorboardx_without_torch():
  """tensorboardX imports PyTorch when it is installed, only to accept torch tensors (which we
  never pass); that costs every process about a second at start, so it is hidden meanwhile."""
  hide = 'torch' not in sys.modules
  if hide:
    sys.modules['torch'] = None  # `import torch` raises ImportError, which tensorboardX expects
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top,redefined-outer-name
  finally:
    if hide:
      del sys.modules['torch']
  return tensorboardX


tensorboardX = _import_tensorboardx_without_torch()
from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top,wrong-import-position

from facegan_jax.runs import storage  # pylint: disable=g-import-not-at-top,wrong-import-position

# Short names for the log line, in the order shown; other scalars follow under their own names.
_LOG_NAMES = {'d_loss': 'd_loss', 'g_loss': 'g_loss', 'd_real': 'D(x)', 'd_fake': 'D(G(z))',
              'd_grad_norm': '|grad D|', 'g_grad_norm': '|grad G|', 'fid': 'FID', 'kid': 'KID',
              'precision': 'precision', 'recall': 'recall', 'density': 'density',
              'coverage': 'coverage'}


class _ObjectEventsFile:
  """A TensorBoard events file in GCS for tensorboardX: the records in memory, the whole object
  written (through `storage`) at each flush with new records. tensorboardX's own gs:// writer
  uploads again when it is garbage-collected, which can wait minutes at exit for a network
  that is gone."""

  def __init__(self, path: str):
    self._path = path
    self._records = io.BytesIO()
    self._written = 0  # bytes of _records already in the object

  def write(self, data: bytes):
    self._records.write(data)

  def flush(self):
    if self._records.tell() != self._written:
      storage.write_bytes(self._path, self._records.getvalue())
      self._written = self._records.tell()

  def close(self):
    self.flush()


class _ObjectEventsFactory:
  """tensorboardX's writer factory for gs:// logdirs."""

  def open(self, path: str) -> _ObjectEventsFile:
    return _ObjectEventsFile(path)

  def directory_check(self, path: str):
    del path  # objects need no directory


record_writer.register_writer_factory('gs', _ObjectEventsFactory())


class MetricWriter:
  """Scalars to TensorBoard and metrics.jsonl, images to TensorBoard; a no-op if not `enabled`.

  `start_step` > 0 (a resumed run) makes TensorBoard drop events of later steps that an
  interrupted run wrote after its last checkpoint, so every step's curve has one value.
  """

  def __init__(self, workdir: str, enabled: bool, start_step: int = 0):
    self._workdir = workdir
    self._writer = None
    if enabled:
      self._writer = tensorboardX.SummaryWriter(
          logdir=workdir, purge_step=start_step + 1 if start_step else None)

  def write_scalars(self, step: int, scalars: dict, context: dict | None = None):
    """Adds each {name: float} at `step`, and one JSON line {name: value, 'step': step}.

    The line is strict JSON: a non-finite value (e.g. an FID of a broken generator) is null.
    `context` {name: str or int} (what the scalars were computed on, e.g. the FID protocol and
    sample counts) goes into the JSON line only.
    """
    if self._writer is None:
      return
    for name, value in scalars.items():
      self._writer.add_scalar(name, value, step)
    line = {name: value if math.isfinite(value) else None for name, value in scalars.items()}
    storage.append_text(os.path.join(self._workdir, 'metrics.jsonl'), json.dumps(
        dict(line, **(context or {}), step=step), allow_nan=False) + '\n')

  def write_image(self, step: int, name: str, image: np.ndarray):
    """Adds one [H, W, C] uint8 image (C = 1 or 3) at `step`."""
    if self._writer is None:
      return
    if image.shape[-1] == 1:
      self._writer.add_image(name, image[..., 0], step, dataformats='HW')
    else:
      self._writer.add_image(name, image, step, dataformats='HWC')

  def flush(self):
    if self._writer is not None:
      self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()


def format_scalars(scalars: dict) -> str:
  """'d_loss 1.3863 g_loss 0.6931 D(x) 0.5000 ...': the scalars in a compact, fixed order."""
  names = [name for name in _LOG_NAMES if name in scalars]
  names += [name for name in scalars if name not in _LOG_NAMES]
  return ' '.join(f'{_LOG_NAMES.get(name, name)} {scalars[name]:.4f}' for name in names)
