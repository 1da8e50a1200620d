"""Helpers that run code in a fresh process with N virtual CPU devices."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'


def environment(devices=1, env=None):
  """`env` (default: this process's) with `devices` CPU devices (its other XLA_FLAGS kept) and
  the repository importable."""
  env = os.environ if env is None else env
  flags = [flag for flag in env.get('XLA_FLAGS', '').split()
           if not flag.startswith(DEVICE_COUNT_FLAG)]
  return dict(env, XLA_FLAGS=' '.join(flags + [f'{DEVICE_COUNT_FLAG}={devices}']),
              PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')


def run(command, devices=1, timeout=300, env=None):
  """Runs `command` from the repository root with `devices` CPU devices per process."""
  return subprocess.run(list(command), cwd=ROOT, env=environment(devices, env),
                        capture_output=True, text=True, timeout=timeout, check=False)


def run_python(args, devices=1, timeout=300):
  """Runs `python ARGS` (this interpreter) like `run`."""
  return run([sys.executable] + list(args), devices=devices, timeout=timeout)
