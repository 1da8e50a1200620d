"""SNGAN side by side: Mimicry's own networks and train step against ours, timed in alternation.

  python benchmarks/mimicry_sngan.py [--resolution=32] [--ngf=32] [--ndf=32] [--batch_size=64]
      [--d_steps=5] [--rounds=3] [--steps=3] [--channels_last]

Needs PyTorch and torch-mimicry (the test extra; README, Tests). Mimicry's step is one iteration
of its Trainer.train: `d_steps` calls of its D `train_step` (D on a real batch, G makes the
fakes, D on them, Adam), then its G `train_step` (G on fresh latents, D on the fakes, Adam);
hinge loss, Adam(2e-4, betas=(0, 0.9)), its linear learning-rate decay. Ours is the step that
training runs (benchmarks/step_timing.py) of the same model and recipe (configs/celeba.py
`use_sngan` at this resolution, with these widths). Both on one fixed synthetic real batch;
rounds alternate between the two in one process so that both see the same machine load. images/s
is the batch size over the median step time after 3 warm-up steps, as benchmarks/train_step.py
counts it; torch uses as many threads as the machine has cores, XLA its default.
"""

import argparse
import os
import statistics
import sys
import time

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import extras

extras.require({'torch': 'pip install torch==2.13.0', 'torch_mimicry': extras.MIMICRY})

import torch  # pylint: disable=wrong-import-position

from benchmarks import step_timing
from configs import celeba
from configs import default
from facegan_jax.system import xla_flags
from tests.helpers import mimicry_reference


def mimicry_step(args):
  """A function running one Mimicry iteration (its networks at the given widths)."""
  generator, discriminator = mimicry_reference.build(args.resolution, args.ngf, args.ndf,
                                                     perturb_batchnorm=False)
  real = torch.rand(args.batch_size, 3, args.resolution, args.resolution) * 2 - 1
  if args.channels_last:
    generator, discriminator = (net.to(memory_format=torch.channels_last)
                                for net in (generator, discriminator))
    real = real.contiguous(memory_format=torch.channels_last)
  opt_g, opt_d = (torch.optim.Adam(net.parameters(), 2e-4, betas=(0.0, 0.9))
                  for net in (generator, discriminator))
  metric_log, scheduler_lib = mimicry_reference.import_training()
  scheduler = scheduler_lib.LRScheduler('linear', opt_d, opt_g, num_steps=100_000)
  steps = [0]

  def step():
    log_data = metric_log.MetricLog()
    for _ in range(args.d_steps):
      discriminator.train_step((real, None), generator, opt_d, log_data)
    generator.train_step((real, None), discriminator, opt_g, log_data)
    steps[0] += 1
    scheduler.step(log_data, steps[0])

  return step


def timed(step, count):
  seconds = []
  for _ in range(count):
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
  return seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--resolution', type=int, default=32)
  parser.add_argument('--ngf', type=int, default=32)
  parser.add_argument('--ndf', type=int, default=32)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--d_steps', type=int, default=5)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--channels_last', action='store_true')
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())  # mimicry_reference sets one thread for the tests

  config = default.get_config()
  celeba.use_sngan(config, args.resolution)
  config.model.update(g_width=args.ngf, d_width=args.ndf)
  config.train.d_steps = args.d_steps
  trainer, compiled, state, batch, compile_seconds = step_timing.compile_step(config,
                                                                             args.batch_size)
  ours_state = [state]

  def ours():
    ours_state[0] = step_timing.timed_steps(trainer, compiled, ours_state[0], batch, 1)[1]

  theirs = mimicry_step(args)
  timed(theirs, step_timing.WARMUP_STEPS)
  times = {'ours': [], 'mimicry': []}
  for _ in range(args.rounds):
    times['ours'] += timed(ours, args.steps)
    times['mimicry'] += timed(theirs, args.steps)
  layout = 'channels_last' if args.channels_last else 'contiguous'
  print(f'SNGAN-{args.resolution} ngf={args.ngf} ndf={args.ndf} batch {args.batch_size} '
        f'd_steps {args.d_steps}; torch {torch.__version__} {torch.get_num_threads()} threads '
        f'{layout}; our compile {compile_seconds:.1f} s')
  rates = {name: args.batch_size / statistics.median(seconds) for name, seconds in times.items()}
  for name, rate in rates.items():
    print(f'| {name} | {rate:.1f} images/s | {statistics.median(times[name]):.3f} s/step |')
  print(f"| ours / Mimicry | {rates['ours'] / rates['mimicry']:.2f}x |", flush=True)


if __name__ == '__main__':
  xla_flags.add_speed_flags()
  main()
