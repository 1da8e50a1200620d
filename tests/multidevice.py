"""Helpers that run code in a fresh Python process with N virtual CPU devices."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, devices=1, timeout=300, **kwargs):
  """Runs `python ARGS` from the repository root with `devices` CPU devices."""
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable] + list(args), cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=timeout, check=False, **kwargs)
