"""Pixel conventions (uint8 <-> [-1, 1], on host and device) and PNG grids."""

import numpy as np
from PIL import Image

from facegan_jax.data import images


def test_to_uint8_maps_the_tanh_range_to_bytes():
  np.testing.assert_array_equal(images.to_uint8(np.array([-1.0, 0.0, 1.0, 1.5, -2.0])),
                                [0, 128, 255, 255, 0])


def test_quantize_on_the_device_rounds_like_the_saved_pngs():
  values = np.array([-1.0, -0.5, 0.0, 0.999, 1.0, 1.5, -2.0, 2 / 255 - 1], np.float32)
  np.testing.assert_array_equal(np.asarray(images.quantize(values)), images.to_uint8(values))


def test_model_range_inverts_the_rounding_of_every_byte():
  every_byte = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(images.to_uint8(images.to_model_range(every_byte)), every_byte)


def test_grid_places_images_row_by_row():
  tiles = np.stack([np.full((3, 4, 1), 10 * (i + 1), np.uint8) for i in range(5)])
  grid = images.make_grid(tiles, columns=3, padding=1)
  assert grid.shape == (2 * 4 + 1, 3 * 5 + 1, 1)
  assert grid[1, 1, 0] == 10 and grid[1, 6, 0] == 20 and grid[5, 1, 0] == 40
  assert grid[5, 11, 0] == 0  # the sixth cell is empty
  assert grid[0, :, 0].max() == 0  # border


def test_png_round_trips_gray_and_colour(tmp_path):
  for channels in (1, 3):
    image = np.random.default_rng(0).integers(0, 256, (6, 7, channels), dtype=np.uint8)
    path = tmp_path / f'{channels}.png'
    images.save_png(str(path), image)
    loaded = np.asarray(Image.open(path)).reshape(6, 7, channels)
    np.testing.assert_array_equal(loaded, image)
