"""One run per workdir: an exclusive lock that the operating system drops when the process dies."""

import contextlib
import fcntl
import os

from facegan_jax.errors import UserError

LOCK_NAME = '.lock'


@contextlib.contextmanager
def hold(workdir: str):
  """Holds `workdir/.lock` for the duration; UserError if another process holds it.

  The lock is `flock`-based, so a run killed with SIGKILL never leaves a stale lock behind.
  """
  path = os.path.join(workdir, LOCK_NAME)
  try:
    os.makedirs(workdir, exist_ok=True)
    lock_file = open(path, 'a+')  # pylint: disable=consider-using-with
  except OSError as error:  # a file, a read-only filesystem, no permission, a full disk
    raise UserError(f'workdir {workdir} cannot be used ({error.strerror}: {error.filename}); '
                    'use a directory that you can write to as --workdir.') from None
  with lock_file:
    try:
      fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      lock_file.seek(0)
      owner = lock_file.read().strip() or 'unknown'
      raise UserError(f'workdir {workdir} is in use by another run (pid {owner}); wait for it '
                      'to finish, stop it, or choose another --workdir.') from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    try:
      yield
    finally:
      fcntl.flock(lock_file, fcntl.LOCK_UN)
