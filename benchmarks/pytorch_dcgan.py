"""The reference the speed targets compare with: the PyTorch DCGAN train step, timed.

  python benchmarks/pytorch_dcgan.py [--batch_sizes=64,128] [--steps=30] [--channels_last]

Needs PyTorch (`pip install torch==2.13.0`, CPU build), which facegan_jax does not depend on.
The models and the step follow the pytorch/examples DCGAN (64x64, nz=100, ngf=ndf=64, BCE on a
sigmoid, Adam(2e-4, betas=(0.5, 0.999))): D on a real batch and on the detached fakes, one D
step, then D on the fakes again for G's loss and one G step. Real images are a fixed synthetic
batch, as in benchmarks/train_step.py. images/s is the batch size over the median step time
after 3 warm-up steps; torch uses as many threads as the machine has cores.
"""

import argparse
import os
import statistics
import sys
import time

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import extras

extras.require({'torch': 'pip install torch==2.13.0'})

import torch  # pylint: disable=wrong-import-position
from torch import nn

LATENT, WIDTH, CHANNELS = 100, 64, 3
WARMUP_STEPS = 3


def generator():
  def up(c_in, c_out, stride, padding):
    return [nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(True)]
  w = WIDTH
  return nn.Sequential(*up(LATENT, 8 * w, 1, 0), *up(8 * w, 4 * w, 2, 1), *up(4 * w, 2 * w, 2, 1),
                       *up(2 * w, w, 2, 1), nn.ConvTranspose2d(w, CHANNELS, 4, 2, 1, bias=False),
                       nn.Tanh())


def discriminator():
  def down(c_in, c_out, norm):
    return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
            *([nn.BatchNorm2d(c_out)] if norm else []), nn.LeakyReLU(0.2, True)]
  w = WIDTH
  return nn.Sequential(*down(CHANNELS, w, False), *down(w, 2 * w, True),
                       *down(2 * w, 4 * w, True), *down(4 * w, 8 * w, True),
                       nn.Conv2d(8 * w, 1, 4, 1, 0, bias=False), nn.Sigmoid())


def init_weights(module):
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(module.weight, 0.0, 0.02)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


def time_steps(batch_size, steps, channels_last):
  torch.manual_seed(0)
  net_g, net_d = generator(), discriminator()
  net_g.apply(init_weights)
  net_d.apply(init_weights)
  real = torch.rand(batch_size, CHANNELS, 64, 64) * 2 - 1
  if channels_last:
    net_g, net_d = (net.to(memory_format=torch.channels_last) for net in (net_g, net_d))
    real = real.contiguous(memory_format=torch.channels_last)
  criterion = nn.BCELoss()
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)

  def step():
    net_d.zero_grad()
    criterion(net_d(real).view(-1), ones).backward()
    fake = net_g(torch.randn(batch_size, LATENT, 1, 1))
    criterion(net_d(fake.detach()).view(-1), zeros).backward()
    opt_d.step()
    net_g.zero_grad()
    criterion(net_d(fake).view(-1), ones).backward()
    opt_g.step()

  seconds = []
  for i in range(WARMUP_STEPS + steps):
    start = time.perf_counter()
    step()
    if i >= WARMUP_STEPS:
      seconds.append(time.perf_counter() - start)
  return batch_size / statistics.median(seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_sizes', default='64,128')
  parser.add_argument('--steps', type=int, default=30)
  parser.add_argument('--channels_last', action='store_true')
  args = parser.parse_args()
  layout = 'channels_last' if args.channels_last else 'contiguous'
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {layout}')
  for batch_size in map(int, args.batch_sizes.split(',')):
    images_per_s = time_steps(batch_size, args.steps, args.channels_last)
    print(f'| pytorch DCGAN-64 | {batch_size} | {images_per_s:.1f} images/s |', flush=True)


if __name__ == '__main__':
  main()
