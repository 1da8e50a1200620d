"""Loads the reference arrays of tests/data/ (copied from ../shared/fixtures/).

They are numbers produced on CPU (torch 2.13) by Mimicry @ a7fda06 (sngan64_small.npz) and by
NVIDIA's stylegan3 code @ c233a919 (stylegan2_*.npz): weights under their state_dict names
(G/..., D/...), inputs (in/...), outputs (out/...) and states after a call;
../shared/fixtures/README.md, sections A and B, says what each one is.
"""

import os

import numpy as np

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data')


def load(name):
  """{array name: np.ndarray} of fixtures/<name>."""
  with np.load(os.path.join(DIRECTORY, name)) as arrays:
    return dict(arrays)
