"""Pixel conventions between uint8 images and the models' [-1, 1], and PNG grids.

The models see float32 in [-1, 1] (`to_model_range`, on the device inside the step); generated
images become uint8 by one rounding rule, on the host for PNGs (`to_uint8`) and on the device
for FID (`quantize`), so FID sees exactly the pixels a saved PNG holds.
"""

import io
import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from facegan_jax.runs import storage


def to_model_range(images: jax.Array) -> jax.Array:
  """uint8 [..., H, W, C] -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def _rounded_uint8(images, xp):
  """[..., H, W, C] float in [-1, 1] -> uint8 in [0, 255], rounded half to even and clipped."""
  return xp.clip(xp.round((images + 1.0) * 127.5), 0, 255).astype(xp.uint8)


def to_uint8(images) -> np.ndarray:
  """[..., H, W, C] float in [-1, 1] -> uint8 in [0, 255] (rounded, clipped), on the host."""
  return _rounded_uint8(np.asarray(images, np.float32), np)


def quantize(images: jax.Array) -> jax.Array:
  """`to_uint8`'s rule on the device (inside jitted code)."""
  return _rounded_uint8(images, jnp)


def make_grid(images: np.ndarray, columns: int = 0, padding: int = 2) -> np.ndarray:
  """[N, H, W, C] uint8 -> one [rows*(H+p)+p, cols*(W+p)+p, C] uint8 image, black borders.

  `columns` defaults to the smallest count that makes the grid about square.
  """
  count, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(count))
  rows = math.ceil(count / columns)
  grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding,
                   channels), np.uint8)
  for index, image in enumerate(images):
    top = padding + (index // columns) * (height + padding)
    left = padding + (index % columns) * (width + padding)
    grid[top:top + height, left:left + width] = image
  return grid


def save_png(path: str, image: np.ndarray):
  """Writes [H, W, C] uint8 (C = 1 or 3) as a PNG, a local file or a gs:// object; the bytes
  depend only on the pixels."""
  pixels = image[..., 0] if image.shape[-1] == 1 else image
  encoded = io.BytesIO()
  Image.fromarray(pixels).save(encoded, format='PNG')
  storage.write_bytes(path, encoded.getvalue())
