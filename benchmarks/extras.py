"""A benchmark whose optional packages are missing stops with one line saying how to get them."""

import importlib.util
import os
import sys

TEST_EXTRA = "pip install -e '.[test]'"
MIMICRY = 'pip install --no-deps torch-mimicry==0.1.16'


def require(packages: dict[str, str]) -> None:
  """Exits (code 1) naming the first module of `packages` (module -> the command that installs
  it) that cannot be imported; call it before importing them."""
  for module, install in packages.items():
    if importlib.util.find_spec(module) is None:
      sys.exit(f'error: {os.path.basename(sys.argv[0])} needs the {module} package, which is '
               f'not installed; install it with: {install}')
