"""Seconds from a command's start to its first train step (or its result), with a cold and a
warm persistent compilation cache.

  python benchmarks/startup.py [--configs=lfw_demo,lfw_demo:sngan,lfw_demo:stylegan2,celeba64]
      [--evaluate_samples=100]

For each config, `main` runs one train step in a new workdir twice: first with an empty cache
directory (cold: every program compiled), then with a new workdir and the same cache (warm: what
a second run or a resume pays). The time to the first step is from the process's start to the
timestamp of its step-1 log line; 'ready' is the log's own figure for the train-step programs.
Then `sample` (a 64-face grid) and, when the FID Inception weights are at hand, `evaluate`
(--evaluate_samples) run on that workdir, with an empty cache and again warm; their figure is
the whole command's wall time. `celeba64` is configs/celeba.py (DCGAN-64) and `celeba64:*` its
variants, trained here on the LFW faces (data.source=lfw_subset: 100 grayscale faces, so the
batch is at most 64) so that no download is needed.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as `python benchmarks/startup.py`: configs/ importable

from configs import celeba  # pylint: disable=wrong-import-position

LFW_FACES = 64  # the batch at most, of the LFW subset's 100 faces
STEP_ONE = re.compile(r'^I(\d{4}) (\d\d:\d\d:\d\d\.\d+) .*step 1/1:', re.M)
READY = re.compile(r'The train step is ready in ([\d.]+) s: (.*?); its other')


def config_flags(name: str) -> list[str]:
  """--config flags for a benchmark config name."""
  if name.startswith('celeba64'):
    variant = name.partition(':')[2]
    batch_size = min(celeba.get_config(variant or None).train.batch_size, LFW_FACES)
    return [f'--config=configs/celeba.py{":" + variant if variant else ""}',
            '--config.data.source=lfw_subset', '--config.data.crop=0',
            '--config.model.channels=1',  # the LFW subset is grayscale
            f'--config.train.batch_size={batch_size}']
  return [f'--config=configs/{name.replace(":", ".py:", 1) if ":" in name else name + ".py"}']


def run(args):
  """(start time, seconds, stderr) of `python ARGS` from the repository root."""
  environment = dict(os.environ, PYTHONPATH=ROOT)
  environment.pop('JAX_COMPILATION_CACHE_DIR', None)  # each run names its cache
  start = time.time()
  result = subprocess.run([sys.executable, *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, check=False)
  if result.returncode:
    sys.exit(f'error: {" ".join(args)} failed: {result.stderr[-2000:]}')
  return start, time.time() - start, result.stderr


def first_step(config, workdir, cache):
  """(seconds to the first step, seconds the step programs took, their source)."""
  start, _, log = run(['-m', 'facegan_jax.main', *config_flags(config), f'--workdir={workdir}',
                       '--config.train.num_steps=1', '--config.samples.every=1000000',
                       '--config.eval.every=0', f'--config.compilation_cache={cache}'])
  month_day, clock = STEP_ONE.search(log).groups()
  today = datetime.datetime.fromtimestamp(start)
  stamp = datetime.datetime.strptime(f'{today.year}{month_day} {clock}', '%Y%m%d %H:%M:%S.%f')
  ready_seconds, source = READY.search(log).groups()
  return stamp.timestamp() - start, float(ready_seconds), source


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', default='lfw_demo,lfw_demo:sngan,lfw_demo:stylegan2,celeba64')
  parser.add_argument('--evaluate_samples', type=int, default=100)
  args = parser.parse_args()
  inception = os.path.expanduser('~/.cache/facegan_jax/inception-2015-12-05.npz')
  print('| config | first step, cold (s) | ready, cold (s) | first step, warm (s) | ready, warm (s) '
        '| warm source | sample cold / warm (s) | evaluate cold / warm (s) |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for config in args.configs.split(','):
    with tempfile.TemporaryDirectory() as scratch:
      cache = os.path.join(scratch, 'cache')
      cold = first_step(config, os.path.join(scratch, 'cold'), cache)
      warm = first_step(config, os.path.join(scratch, 'warm'), cache)
      commands = {'sample': ['-m', 'facegan_jax.sample', f'--workdir={scratch}/warm', '--num=64',
                             f'--out={scratch}/grid.png']}
      if os.path.exists(inception):
        commands['evaluate'] = ['-m', 'facegan_jax.evaluate', f'--workdir={scratch}/warm',
                                f'--num_samples={args.evaluate_samples}']
      timings = {}
      for name, command in commands.items():
        fresh = os.path.join(scratch, f'{name}_cache')
        command.append(f'--compilation_cache={fresh}')
        timings[name] = f'{run(command)[1]:.1f} / {run(command)[1]:.1f}'
      print(f'| {config} | {cold[0]:.1f} | {cold[1]:.1f} | {warm[0]:.1f} | {warm[1]:.1f} | '
            f'{warm[2]} | {timings["sample"]} | {timings.get("evaluate", "no weights")} |',
            flush=True)


if __name__ == '__main__':
  main()
