"""How a run stops with one line: user mistakes, divergence, preemption; how entry points exit."""

import functools
import os
import sys
import threading

from absl import logging


class StopRun(Exception):
  """The run stops for a reason its message explains in one line; main exits with `exit_code`."""
  exit_code = 1
  prefix = 'error: '


class UserError(StopRun):
  """A user mistake: the message names the bad value and the fix; main prints it as one line."""


class Diverged(StopRun):
  """A train step produced a non-finite loss, gradient or parameter; nothing of it was saved."""
  exit_code = 3


class Preempted(StopRun):
  """SIGTERM or SIGINT: the run saved a checkpoint of its last step; the same command resumes.

  Exit code 75 (EX_TEMPFAIL of sysexits.h): a temporary failure, to be retried as it was.
  """
  exit_code = 75
  prefix = 'stopped: '


class StoppedBySignal(BaseException):
  """SIGTERM or SIGINT outside the train steps, raised by the signal handler wherever Python
  is: a BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (a
  logging handler, a reader that reports damaged files) swallows or renames it. Exits 75 as
  Preempted does."""
  exit_code = 75
  prefix = 'stopped: '


def check_at_least(config, field: str, minimum):
  """UserError unless `config.<field>` (dotted, e.g. 'train.num_steps') is at least `minimum`."""
  value = config
  for name in field.split('.'):
    value = value[name]
  if value < minimum:
    raise UserError(f'config.{field}={value} must be at least {minimum}.')


# Set by a command run as a program (main.py's __main__): a stop then leaves the process at
# once when other threads are still busy (an XLA compilation cannot be cancelled, a prefetch
# thread may be blocked), rather than waiting for them; a command called in-process returns.
EXIT_AT_ONCE = False
OUT_OF_MEMORY = ('lower config.train.batch_size, or the model\'s widths or resolution '
                 '(config.model)')


def exit_with(stop: StopRun | StoppedBySignal):
  """Prints `stop` as its one line on stderr and exits with its code (at once, see
  EXIT_AT_ONCE, if other threads are still busy)."""
  print(f'{stop.prefix}{stop}', file=sys.stderr, flush=True)
  busy = [thread for thread in threading.enumerate()
          if not thread.daemon and thread is not threading.main_thread()]
  if busy and EXIT_AT_ONCE:
    logging.flush()
    os._exit(stop.exit_code)  # pylint: disable=protected-access
  raise SystemExit(stop.exit_code) from None


def out_of_memory(error: Exception, knob: str) -> UserError | None:
  """A one-line UserError naming `knob` for XLA's RESOURCE_EXHAUSTED (any backend), else None."""
  if 'RESOURCE_EXHAUSTED' not in str(error):
    return None
  detail = str(error).split('RESOURCE_EXHAUSTED:', 1)[-1].strip().splitlines()[0]
  return UserError(f'out of memory on the device ({detail.rstrip(".")}); {knob}.')


def exit_on_user_error(main=None, *, out_of_memory_knob: str = OUT_OF_MEMORY):
  """Wraps an absl `main(argv)`: a StopRun becomes 'PREFIX MESSAGE' on stderr and its exit code;
  running out of device memory becomes one line naming `out_of_memory_knob`; Ctrl-C outside the
  training loop exits 130 (128 + SIGINT) without a traceback. Use as `@exit_on_user_error` or
  `@exit_on_user_error(out_of_memory_knob='lower --batch')`."""
  if main is None:
    return functools.partial(exit_on_user_error, out_of_memory_knob=out_of_memory_knob)

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except (StopRun, StoppedBySignal) as stop:
      exit_with(stop)
    except KeyboardInterrupt:
      print('stopped: interrupted.', file=sys.stderr, flush=True)
      raise SystemExit(130) from None
    except Exception as error:  # pylint: disable=broad-except
      stop = out_of_memory(error, out_of_memory_knob)
      if stop is None:
        raise
      exit_with(stop)

  return wrapped


def check_power_of_two(field: str, value, minimum: int, maximum: int):
  """UserError unless `value` (of config.<field>) is a power of two in [minimum, maximum]."""
  if (not isinstance(value, int) or value < minimum or value > maximum
      or value & (value - 1)):
    choices = ', '.join(str(2**i) for i in range(minimum.bit_length() - 1,
                                                 maximum.bit_length()))
    raise UserError(f'config.{field}={value!r} is not supported; use a power of two from '
                    f'{minimum} to {maximum} ({choices}).')
