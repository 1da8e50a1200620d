"""The one exception type for mistakes a user can fix, and how entry points report it."""

import functools


class UserError(Exception):
  """A user mistake: the message names the bad value and the fix; main prints it as one line."""


def check_at_least(config, field: str, minimum):
  """UserError unless `config.<field>` (dotted, e.g. 'train.num_steps') is at least `minimum`."""
  value = config
  for name in field.split('.'):
    value = value[name]
  if value < minimum:
    raise UserError(f'config.{field}={value} must be at least {minimum}.')


def exit_on_user_error(main):
  """Wraps an absl `main(argv)`: a UserError becomes 'error: MESSAGE' on stderr and exit 1."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except UserError as error:
      raise SystemExit(f'error: {error}') from None

  return wrapped


def check_power_of_two(field: str, value, minimum: int, maximum: int):
  """UserError unless `value` (of config.<field>) is a power of two in [minimum, maximum]."""
  if (not isinstance(value, int) or value < minimum or value > maximum
      or value & (value - 1)):
    choices = ', '.join(str(2**i) for i in range(minimum.bit_length() - 1,
                                                 maximum.bit_length()))
    raise UserError(f'config.{field}={value!r} is not supported; use a power of two from '
                    f'{minimum} to {maximum} ({choices}).')
