"""The processes of one server reload together: a file that a process replaces after it re-read
the store, and that the others watch.

Contract:
- ``serve`` with several processes sets ``HELIXSERVE_RELOAD_SIGNAL`` (:attr:`Settings.
  reload_signal <helixserve.settings.Settings.reload_signal>`) to a file in a temporary folder
  that it removes at exit; one process has none (:class:`ReloadSignal` of ``None``: every method
  does nothing).
- :meth:`ReloadSignal.bump`: after this process re-read the store (a deploy, ``POST
  /api/v1/admin/reload``), the file is replaced (a new file renamed over the old one, so its
  identity changes even where file times are coarse). A file that cannot be written is logged;
  the others then see the change at their next store poll.
- :meth:`ReloadSignal.changed`: whether the file changed since this process last looked or
  bumped it: one ``stat``, cheap enough for :data:`WATCH_EVERY_S`. The server's watcher reloads
  when it did, so a model deployed through one process is served by all of them within about
  :data:`WATCH_EVERY_S` seconds (the store poll stays the way other hosts learn of it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("helixserve.server")
WATCH_EVERY_S = 0.25
Stamp = tuple[int, int, int]


class ReloadSignal:
    """The file the processes of one server replace and watch; see the module contract."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.seen = self._stamp()

    def _stamp(self) -> Stamp | None:
        if self.path is None:
            return None
        try:
            found = self.path.stat()
        except OSError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

    def bump(self) -> None:
        """Tell the other processes that this one re-read the store."""
        if self.path is None:
            return
        fresh = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        try:
            fresh.write_text(str(os.getpid()))
            os.replace(fresh, self.path)
        except OSError as err:
            log.warning("could not tell the other server processes to reload: %s", err)
            with contextlib.suppress(OSError):
                fresh.unlink()
            return
        self.seen = self._stamp()

    def changed(self) -> bool:
        """Whether another process bumped the file since this one last looked."""
        if self.path is None:
            return False
        stamp = self._stamp()
        if stamp == self.seen:
            return False
        self.seen = stamp
        return stamp is not None
