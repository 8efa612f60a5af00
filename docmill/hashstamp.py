"""Files' sha256, remembered by their stat, so a model set is hashed once and not at every start.

Hashing the default set's 31.6 MB took 32 ms of CPU at every process start (1.6 ms with the
stamp), and a set of fp32 server models is several times that. The stamp keeps, per
file, the digest with the stat it was taken at: size, mtime and ctime in nanoseconds, inode
and device. Any write to the file moves its mtime and ctime, and ctime cannot be set back by
a user, so a file that matches its stamp has the bytes that were hashed (git's index and
rsync trust the same facts). As in git's "racy" rule, a file changed within RACY_S of its
hashing is not stamped: a second write inside the file system's clock tick would leave the
stat as it was. It lives in the set's folder as `.verified`, written atomically, and goes
when the set goes; where the folder is read-only, files are hashed each time, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from docmill.storage import LocalStorage, StorageError

log = logging.getLogger(__name__)

STAMP_FILE = ".verified"
RACY_S = 2.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


class HashStamps:
    """The digests of one folder's files, hashed only when a file's stat has moved."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STAMP_FILE
        self._stamps = self._read()
        self._changed = False

    def _read(self) -> dict[str, list]:
        try:
            stamps = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return stamps if isinstance(stamps, dict) else {}

    def sha256(self, path: Path) -> str:
        """`path`'s digest: from the stamp when its stat is the one stamped, else hashed now."""
        stat = path.stat()
        identity = _identity(stat)
        stamp = self._stamps.get(path.name)
        if isinstance(stamp, list) and len(stamp) == 2 and stamp[0] == identity:
            return stamp[1]
        digest = sha256_file(path)
        if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > RACY_S * 1e9:
            self._stamps[path.name] = [identity, digest]
            self._changed = True
        return digest

    def save(self) -> None:
        """Write the stamps when any were hashed now; a read-only folder keeps none."""
        if not self._changed:
            return
        try:
            LocalStorage().write_bytes(str(self.path), json.dumps(self._stamps).encode())
        except StorageError as exc:
            log.info("%s: cannot keep hash stamps (%s); files will be hashed at each start", self.path, exc)
        self._changed = False
