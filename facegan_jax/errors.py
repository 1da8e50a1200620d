"""The one exception type for mistakes a user can fix (config values, paths, flags)."""


class UserError(Exception):
  """A user mistake: the message names the bad value and the fix; main prints it as one line."""
