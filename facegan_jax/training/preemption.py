"""Stopping at a step boundary on SIGTERM or SIGINT, at the same step in every process.

TPU VMs, Kubernetes and SLURM send SIGTERM before they take a machine back; Ctrl-C sends SIGINT.
While `StopSignals` is active, either signal only asks the loop to stop: it finishes the step,
saves it, and exits (errors.Preempted). A second signal of the same kind ends the process at
once, as without it.

One process: the signal handler sets a flag that the loop reads after each step (no sync).
Several processes: JAX's preemption service (on by default in `jax.distributed`) catches
SIGTERM in any process, and `reached_preemption_sync_point(step)`, called at every step by
every process, becomes true at the same step everywhere; a SIGINT is handed to it as a SIGTERM.
"""

import os
import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils

from facegan_jax.system.errors import StoppedBySignal


class _SignalHandlers:
  """Context manager installing `_handle` for SIGINT, and SIGTERM unless several processes run
  (then SIGTERM belongs to JAX's preemption service); the previous handlers come back on exit."""

  def __init__(self):
    self._previous = {}
    self._multiprocess = jax.process_count() > 1

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
      signums = (signal.SIGINT,) if self._multiprocess else (signal.SIGINT, signal.SIGTERM)
      for signum in signums:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    raise NotImplementedError


class SignalsStopAtOnce(_SignalHandlers):
  """For a run's life outside its train steps (loading, compiling, restoring): SIGTERM/SIGINT
  raise errors.StoppedBySignal at once, so that the run unwinds (releasing its workdir) and exits 75;
  no step has been trained since the newest checkpoint, so nothing is lost. `StopSignals` takes
  over while the steps run. Python ignores an exception raised inside a garbage-collection
  callback or a __del__, where a signal can land: the signal is kept in `received`, and
  `StopSignals` raises it again on entry, before the first step."""

  def __init__(self):
    super().__init__()
    self.received = None  # the name of the signal, e.g. 'SIGINT'

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name
    raise self.stopped()

  def stopped(self) -> StoppedBySignal:
    return StoppedBySignal(f'{self.received} received outside the train steps: nothing was '
                           'trained since the newest checkpoint; run the same command to continue.')


class StopSignals(_SignalHandlers):
  """SIGTERM/SIGINT ask `should_stop` to say True after the current step."""

  def __init__(self):
    super().__init__()
    self.received = None  # the name of the first signal, e.g. 'SIGTERM'

  def __enter__(self):
    super().__enter__()
    for handler in self._previous.values():  # a SignalsStopAtOnce whose exception was ignored
      outer = getattr(handler, '__self__', None)
      if isinstance(outer, SignalsStopAtOnce) and outer.received:
        self.__exit__()
        raise outer.stopped()
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signal.Signals(signum).name
    signal.signal(signum, self._previous.pop(signum))  # a second one acts as usual
    logging.warning('%s received: stopping after this step with a checkpoint (send it again to '
                    'stop at once, losing the steps since the last checkpoint).',
                    signal.Signals(signum).name)
    if self._multiprocess:
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption service tells every process

  def should_stop(self, step: int) -> bool:
    """Whether to save `step` (just completed) and stop; call it after every step."""
    if self._multiprocess:
      stop = multihost_utils.reached_preemption_sync_point(step)
      if stop and self.received is None:
        self.received = 'preemption notice (SIGTERM)'
      return stop
    return self.received is not None
