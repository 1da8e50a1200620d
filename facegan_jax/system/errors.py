"""How a run stops with one line: user mistakes, divergence, preemption; how entry points exit."""

import functools
import sys


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


def check_at_least(config, field: str, minimum):
  """UserError unless `config.<field>` (dotted, e.g. 'train.num_steps') is at least `minimum`."""
  value = config
  for name in field.split('.'):
    value = value[name]
  if value < minimum:
    raise UserError(f'config.{field}={value} must be at least {minimum}.')


def exit_with(stop: StopRun):
  """Prints `stop` as its one line on stderr and exits with its code."""
  print(f'{stop.prefix}{stop}', file=sys.stderr, flush=True)
  raise SystemExit(stop.exit_code) from None


def exit_on_user_error(main):
  """Wraps an absl `main(argv)`: a StopRun becomes 'PREFIX MESSAGE' on stderr and its exit code;
  Ctrl-C outside the training loop exits 130 (128 + SIGINT) without a traceback."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except StopRun as stop:
      exit_with(stop)
    except KeyboardInterrupt:
      print('stopped: interrupted.', file=sys.stderr, flush=True)
      raise SystemExit(130) from None

  return wrapped


def check_power_of_two(field: str, value, minimum: int, maximum: int):
  """UserError unless `value` (of config.<field>) is a power of two in [minimum, maximum]."""
  if (not isinstance(value, int) or value < minimum or value > maximum
      or value & (value - 1)):
    choices = ', '.join(str(2**i) for i in range(minimum.bit_length() - 1,
                                                 maximum.bit_length()))
    raise UserError(f'config.{field}={value!r} is not supported; use a power of two from '
                    f'{minimum} to {maximum} ({choices}).')
