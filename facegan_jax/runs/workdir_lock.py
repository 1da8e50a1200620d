"""One run per workdir: `flock` on local disk, a lock object with a heartbeat on gs://.

Local: an exclusive `flock` on `workdir/.lock`, which the operating system drops when the process
dies, so a run killed with SIGKILL never leaves a stale lock behind.

gs:// (object storage has no `flock`): the object `workdir/.lock` is created only if absent (a
generation precondition, so of two runs that start at once exactly one wins); it holds the
owner (host, pid, start time, a random id) and a heartbeat time that a background thread
rewrites every HEARTBEAT_SECONDS, again under a generation precondition, so a run never
overwrites a lock that another run took over. The object is deleted when the run ends. A run that died (SIGKILL, a
preempted VM) leaves it behind: a lock whose heartbeat is older than STALE_SECONDS is taken over
with a warning; a younger one can be removed by hand (`gcloud storage rm WORKDIR/.lock`) once
you know its run is gone.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import threading
import time
import uuid

from absl import logging

from facegan_jax.runs import storage
from facegan_jax.system.errors import UserError

LOCK_NAME = '.lock'
HEARTBEAT_SECONDS = 60
STALE_SECONDS = 600  # ten missed heartbeats: its run is gone (or cut off from the bucket)


@contextlib.contextmanager
def hold(workdir: str):
  """Holds `workdir/.lock` for the duration; UserError if another run holds it."""
  if storage.is_gcs(workdir):
    with _hold_object(workdir):
      yield
    return
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


class ObjectLock:
  """The lock object of a gs:// workdir (see the module docstring); `generation` is the
  object's generation that this run wrote last (None when it holds no lock)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.url = f'{workdir.rstrip("/")}/{LOCK_NAME}'
    self.generation = None
    self._owner = {'host': socket.gethostname(), 'pid': os.getpid(),
                   'started': datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec='seconds'),
                   'id': uuid.uuid4().hex}  # tells this lock from any other, even our host's

  def _write(self, generation_match: int) -> int:
    """Writes the owner and a fresh heartbeat if the object's generation is `generation_match`
    (0: absent); returns the new generation."""
    blob = storage.blob(self.url)
    blob.upload_from_string(json.dumps(dict(self._owner, heartbeat=time.time())),
                            content_type='application/json',
                            if_generation_match=generation_match, retry=storage.retry())
    return blob.generation

  def acquire(self):
    """Creates the lock, or takes over a stale one; UserError if another run holds it."""
    _, api_exceptions, _ = storage.gcs_modules()
    try:
      for _ in range(3):  # the other run may release or take over in between: look again
        try:
          self.generation = self._write(0)
          return
        except api_exceptions.PreconditionFailed:
          pass
        blob = storage.client().bucket(storage.bucket_name(self.url)).get_blob(
            storage.object_name(self.url), retry=storage.retry())
        if blob is None:
          continue
        holder = _read_holder(blob)
        if all(holder.get(field) == value for field, value in self._owner.items()):
          self.generation = blob.generation  # ours: a retried create whose answer was lost
          return
        age = time.time() - holder.get('heartbeat', 0)
        if age <= STALE_SECONDS:
          raise UserError(
              f'workdir {self.workdir} is in use by another run (host '
              f'{holder.get("host", "unknown")}, pid {holder.get("pid", "unknown")}, last '
              f'heartbeat {age:.0f} s ago); wait for it to finish, stop it, or choose another '
              f'--workdir. If that run is gone, delete its lock (gcloud storage rm {self.url}) '
              f'or start again once its heartbeat is over {STALE_SECONDS} s old.')
        try:
          self.generation = self._write(blob.generation)
          logging.warning('Took over the stale lock %s of host %s, pid %s (last heartbeat '
                          '%.0f s ago).', self.url, holder.get('host'), holder.get('pid'), age)
          return
        except api_exceptions.PreconditionFailed:
          continue  # another run took it over first
      raise UserError(f'workdir {self.workdir} is contended by other runs starting at the same '
                      'time; start one run per workdir.')
    except UserError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      raise storage.gcs_error(self.url, error, '--workdir') from None

  def beat(self) -> bool:
    """Refreshes the heartbeat; False (and an error logged) if another run took the lock."""
    _, api_exceptions, _ = storage.gcs_modules()
    try:
      self.generation = self._write(self.generation)
      return True
    except (api_exceptions.PreconditionFailed, api_exceptions.NotFound):
      logging.error('The lock %s was taken over or deleted by someone else: another run may be '
                    'writing to this workdir; stop one of them.', self.url)
      self.generation = None
      return False

  def release(self):
    """Deletes the lock object if it is still this run's."""
    if self.generation is None:
      return
    _, api_exceptions, _ = storage.gcs_modules()
    try:
      storage.blob(self.url).delete(if_generation_match=self.generation, retry=storage.retry())
    except (api_exceptions.PreconditionFailed, api_exceptions.NotFound):
      pass  # taken over: it is the other run's now
    self.generation = None


def _read_holder(blob) -> dict:
  """The owner and heartbeat that a lock object holds ({} if unreadable)."""
  try:
    holder = json.loads(blob.download_as_bytes())
  except Exception:  # pylint: disable=broad-except
    return {}
  return holder if isinstance(holder, dict) else {}


def _beat_until(lock: ObjectLock, stop: threading.Event):
  while not stop.wait(HEARTBEAT_SECONDS):
    try:
      if not lock.beat():
        return
    except Exception as error:  # pylint: disable=broad-except
      logging.warning('Could not refresh the heartbeat of %s (%s); trying again in %d s.',
                      lock.url, error, HEARTBEAT_SECONDS)


@contextlib.contextmanager
def _hold_object(workdir: str):
  lock = ObjectLock(workdir)
  lock.acquire()
  stop = threading.Event()
  heartbeat = threading.Thread(target=_beat_until, args=(lock, stop), daemon=True,
                               name='workdir-lock-heartbeat')
  heartbeat.start()
  try:
    yield
  finally:
    stop.set()
    heartbeat.join()
    lock.release()
