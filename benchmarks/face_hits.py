"""Face-detector hits on runs' 8x8 sample grids, against the real LFW faces the demo trains on.

  python benchmarks/face_hits.py [DIR ...]

An off-the-shelf detector, OpenCV's Haar cascade haarcascade_frontalface_default.xml (a
benchmark-only dependency: pip install 'opencv-python-headless<5'; OpenCV 5's wheels no longer
ship the cascades), on each 32x32 cell: a cell is a hit when at least one face is detected in it.
For each DIR, the newest DIR/samples/step_NNNNNNN.png (an 8x8 grid as
facegan_jax/data/images.py make_grid lays it out: 32x32 cells, 2-pixel black borders), printed
as hits out of 64. First, the baseline: the same detector on the 100 real LFW faces prepared as
configs/lfw_demo.py trains on them (image_sources.load_images: 32x32 grayscale), the first 64
and all 100, and the same faces upside down (a control: the cascade wants upright faces, so
this should be near 0).

The settings were picked once, on the real faces only, before any generated grid was scored:
each cell upscaled 4x to 128x128 (bicubic), framed by 16 replicated pixels on every side (the
LFW crops are tight, the cascade wants a little context round the face), then
detectMultiScale(scaleFactor=1.1, minNeighbors=12, minSize=(48, 48)). Tried on the real faces
(hits on the first 64 / all 100 / all 100 upside down): minNeighbors 3 with scaleFactor 1.05 gave
63 / 99 / 39, with 1.1 62 / 98 / 26; minNeighbors 5, 8, 12 (scaleFactor 1.1) 61 / 97 / 15,
59 / 94 / 11, 57 / 91 / 5; without the frame fewer upright hits (53-55 / 85-88). minNeighbors 12
keeps the most upright faces for few upside-down ones; the cascade fires on a dark-light
pattern of eyes and mouth, so even so a hit says 'face-like', not 'a convincing face'.
"""

import argparse
import glob
import os
import sys

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import extras


def parse_args(argv):
  """The workdirs of the command line; --help prints the usage (without OpenCV installed too)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='*', metavar='DIR', help='a run\'s workdir')
  return parser.parse_args(argv).workdirs


WORKDIRS = parse_args(sys.argv[1:]) if __name__ == '__main__' else []
extras.require({'cv2': "pip install 'opencv-python-headless<5'"})

import cv2  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from configs import lfw_demo  # pylint: disable=wrong-import-position
from facegan_jax.data import image_sources  # pylint: disable=wrong-import-position

UPSCALE, BORDER = 4, 16
DETECT = dict(scaleFactor=1.1, minNeighbors=12, minSize=(48, 48))
CELL, PADDING, COLUMNS = 32, 2, 8  # make_grid's layout of the demo's grids


def hits(cells: np.ndarray, cascade) -> int:
  """How many of the [N, 32, 32] uint8 cells have at least one detected face."""
  count = 0
  for cell in cells:
    image = cv2.resize(cell, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    image = cv2.copyMakeBorder(image, *[BORDER] * 4, cv2.BORDER_REPLICATE)
    count += len(cascade.detectMultiScale(image, **DETECT)) > 0
  return count


def grid_cells(path: str) -> np.ndarray:
  """The 64 [32, 32] cells of an 8x8 make_grid PNG."""
  grid = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
  if grid.shape != (COLUMNS * (CELL + PADDING) + PADDING,) * 2:
    sys.exit(f'error: {path} is {grid.shape}, not an 8x8 grid of 32x32 cells')
  step = CELL + PADDING
  return np.stack([grid[PADDING + r * step:PADDING + r * step + CELL,
                        PADDING + c * step:PADDING + c * step + CELL]
                   for r in range(COLUMNS) for c in range(COLUMNS)])


def main(workdirs):
  cascade = cv2.CascadeClassifier(cv2.data.haarcascades + 'haarcascade_frontalface_default.xml')
  real = image_sources.load_images(lfw_demo.get_config())[..., 0]
  print(f'real LFW faces: {hits(real[:64], cascade)}/64 (the first 64), '
        f'{hits(real, cascade)}/{len(real)} (all); upside down: '
        f'{hits(real[:, ::-1], cascade)}/{len(real)}')
  for workdir in workdirs:
    grids = sorted(glob.glob(os.path.join(workdir, 'samples', 'step_*.png')))
    if not grids:
      sys.exit(f'error: no samples/step_*.png in {workdir}')
    print(f'{workdir}: {hits(grid_cells(grids[-1]), cascade)}/64 ({os.path.basename(grids[-1])})')


if __name__ == '__main__':
  main(WORKDIRS)
