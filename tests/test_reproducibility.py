"""What bit-identity depends on (docs/reproducibility.md): on CPU, the number of cores the process
may use, because XLA:CPU splits large reductions and matrix products over a thread pool sized
by the process's CPU affinity, and the partial sums then add up in another order."""

import os
import subprocess
import sys

from tests.helpers import multidevice

# A long sum and a matrix product with a long inner dimension, each jitted on its own.
PROGRAM = '''
import hashlib
import jax, jax.numpy as jnp, numpy as np
x = jax.random.normal(jax.random.key(0), (1 << 20,))
a = jax.random.normal(jax.random.key(1), (64, 4096))
b = jax.random.normal(jax.random.key(2), (4096, 256))
results = jax.jit(jnp.sum)(x), jax.jit(jnp.dot)(a, b)
print(hashlib.sha256(b''.join(np.asarray(r).tobytes() for r in results)).hexdigest())
'''


def digest_on_cores(cores: set[int]) -> str:
  """The digest of PROGRAM's results in a fresh process allowed to run on `cores` only."""
  result = subprocess.run([sys.executable, '-c', PROGRAM], env=multidevice.environment(),
                          preexec_fn=lambda: os.sched_setaffinity(0, cores),
                          capture_output=True, text=True, timeout=300, check=True)
  return result.stdout.split()[-1]


def test_cpu_results_depend_on_the_number_of_cores_and_on_nothing_else():
  cores = sorted(os.sched_getaffinity(0))
  assert len(cores) >= 2, f'this test needs a machine with two cores or more; it has {cores}'
  one_core = digest_on_cores({cores[0]})
  assert digest_on_cores({cores[1]}) == one_core  # which core does not matter
  assert digest_on_cores(set(cores[:2])) != one_core  # how many does
