"""Converting generated images to uint8 and writing them as PNG grids."""

import math

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
  """[..., H, W, C] float in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
  scaled = (np.asarray(images, np.float32) + 1.0) * 127.5
  return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


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
  """Writes [H, W, C] uint8 (C = 1 or 3) as a PNG; the bytes depend only on the pixels."""
  pixels = image[..., 0] if image.shape[-1] == 1 else image
  Image.fromarray(pixels).save(path, format='PNG')
