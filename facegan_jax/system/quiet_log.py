"""A quiet log: facegan_jax's own lines, and libraries' warnings; absl's --verbosity=1 shows all.

Orbax logs a hundred INFO lines per run and, when a write fails, the same traceback from each of
its threads; every Orbax failure reaches facegan_jax as an exception, which it reports in one
line (checkpointing.write_failed, checkpointing.damaged), so Orbax's own records are left out,
and so are the 'Event loop is closed' errors that its cancelled writes raise at exit.
"""

import logging
import os
import sys
import traceback

from absl import logging as absl_logging

_LIBRARY_DIRS = (f'{os.sep}site-packages{os.sep}', f'{os.sep}dist-packages{os.sep}')
_ORBAX_DIR = f'{os.sep}orbax{os.sep}'


def _mentions_orbax(record: logging.LogRecord) -> bool:
  """Whether Orbax's code is in the record's message (a task's coroutine) or in the traceback
  of its exception (a gathering future's)."""
  files = ([frame.filename for frame in traceback.extract_tb(record.exc_info[2])]
           if record.exc_info and record.exc_info[2] else [])
  return any(_ORBAX_DIR in text for text in [record.getMessage(), *files])


class LibraryFilter(logging.Filter):
  """Keeps records of code outside installed packages, and warnings of packages other than
  Orbax; asyncio's reports of Orbax tasks whose failure nobody awaited (a failed write's other
  threads) are Orbax's records too."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.name == 'asyncio' and _mentions_orbax(record):
      return False
    if not any(directory in record.pathname for directory in _LIBRARY_DIRS):
      return True
    return record.levelno >= logging.WARNING and _ORBAX_DIR not in record.pathname


# What the asynchronous writes of a failed checkpoint leave behind when the process ends.
_EXIT_NOISE = ('Event loop is closed', 'Python is likely shutting down')


def _drop_exit_noise(default_hook):
  def hook(unraisable):
    if not any(noise in str(unraisable.exc_value) for noise in _EXIT_NOISE):
      default_hook(unraisable)
  return hook


def install(verbosity: int):
  """Filters the absl log handler (which also shows Python `logging`) and the report of
  exceptions raised at exit unless `verbosity` >= 1."""
  if verbosity < 1:
    absl_logging.get_absl_handler().addFilter(LibraryFilter())
    sys.unraisablehook = _drop_exit_noise(sys.unraisablehook)
