"""The divergence guard: each step says on the device whether it stayed finite; the loop reads it.

A step is finite when its metrics are (the losses, and the global norms of the gradients, which
are NaN or infinite when any gradient, or its square, is) and so are the parameters it leaves
(`PARAMS_FINITE`, a boolean the step computes on the device: it also catches a non-finite
gradient of an earlier discriminator update of the step). The loop fetches them for the steps
since its last check, with the metrics it logs anyway, at each logging, sampling, evaluation and
checkpoint step, so checking costs no extra host sync, and stops at the first step that was not
finite, before anything of it is written.
"""

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp

from facegan_jax.system.errors import Diverged

# The metric name of the on-device flag: every parameter of the new state is finite.
PARAMS_FINITE = 'params_finite'
FLAGS = (PARAMS_FINITE,)


def all_finite(*trees) -> jax.Array:
  """bool scalar: every floating-point leaf of `trees` is finite (no NaN, no +-inf)."""
  leaves = [leaf for leaf in jax.tree_util.tree_leaves(trees)
            if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def first_nonfinite(metrics: list[dict[str, Any]], first_step: int) -> Optional[tuple[int, str]]:
  """(step, what) of the first non-finite step among host `metrics` of steps first_step, ...

  `what` names the first non-finite scalar metric with its value (e.g. 'd_loss=nan'), else the
  flag that failed. None when every step was finite.
  """
  for offset, step_metrics in enumerate(metrics):
    for name, value in step_metrics.items():
      if name not in FLAGS and not math.isfinite(float(value)):
        return first_step + offset, f'{name}={float(value)}'
    if not step_metrics.get(PARAMS_FINITE, True):
      return first_step + offset, 'its new parameters (not all finite)'
  return None


def check(metrics: list[dict[str, Any]], first_step: int, last_good_checkpoint: Optional[int],
          workdir: str):
  """Raises Diverged naming the first non-finite step of `metrics`, and how to continue."""
  found = first_nonfinite(metrics, first_step)
  if found is None:
    return
  step, what = found
  if last_good_checkpoint is None:
    saved = 'no checkpoint was written; rerun with lower learning rates'
  else:
    saved = (f'the newest checkpoint, step {last_good_checkpoint} in {workdir}/checkpoints, is '
             'the last finite state; resume it with lower learning rates')
  raise Diverged(f'training diverged at step {step}: {what}; nothing after it was saved, and '
                 f'{saved} (e.g. --config.optim.g_learning_rate and '
                 '--config.optim.d_learning_rate halved), see README, "When things go wrong".')
