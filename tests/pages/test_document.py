"""How a file held only by descriptor is named for open_document and recognised again."""

from __future__ import annotations

import os
import tempfile

from pages.document import descriptor_path, held_descriptor


def test_a_descriptor_path_reads_the_unlinked_file_and_names_its_descriptor_again():
    with tempfile.TemporaryFile() as copy:
        copy.write(b"%PDF-1.7 spooled")
        copy.flush()
        path = descriptor_path(copy.fileno())
        with open(path, "rb") as again:
            assert again.read() == b"%PDF-1.7 spooled"
        assert held_descriptor(path) == copy.fileno()


def test_other_paths_name_no_descriptor():
    for path in ("/tmp/a.pdf", "/proc/self/fd/3", f"/proc/{os.getpid()}/fd/", f"/proc/{os.getpid()}/fd/x",
                 f"/proc/{os.getpid() + 1}/fd/3"):
        assert held_descriptor(path) is None, path
