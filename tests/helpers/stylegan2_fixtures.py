"""Loads the StyleGAN2 reference fixtures (tests/data/, copied from ../shared/fixtures/).

The arrays are numbers produced by NVIDIA's stylegan3 code @ c233a919 on CPU (torch 2.13):
weights under their state_dict names (G/..., D/...), inputs (in/...) and outputs (out/...);
../shared/fixtures/README.md, section B, says what each one is.
"""

import os

import numpy as np

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data')


def load(name):
  """{array name: np.ndarray} of fixtures/<name>."""
  with np.load(os.path.join(DIRECTORY, name)) as arrays:
    return dict(arrays)
