"""Opening and writing blob files: a private mapping, a read of its own, an atomic write.

What a loader may rely on, and what it may not: a mapping (:func:`map_file`) follows the
file while its pages are untouched, so it is safe against files *replaced* by a rename --
which is how :func:`write_file` (``safeart.save_file``) writes -- and not against files
rewritten in place. :func:`read_file` gives bytes nobody else can change.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
from typing import Any, Iterable

from ..errors import FormatError


def map_file(path: str | os.PathLike[str]) -> memoryview:
    """A private mapping of the file (``MAP_PRIVATE``): nothing is read until a byte is
    used, writes to it stay in this process (copy-on-write), and it is unmapped when the
    last view, array or tensor on it is gone (it can never be closed under them). The
    mapping keeps a duplicate of the file descriptor open as long as it lives.

    Its bytes follow the file while they are untouched: a file *replaced* (rename, as
    :func:`safeart.save_file` does) leaves the mapping on the old content, but a file
    rewritten *in place* shows through, and one truncated raises ``SIGBUS`` when a page
    past its new end is used. :func:`read_file` is for files that may be rewritten. A file
    that cannot be mapped (a filesystem without ``mmap``) is read with it.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if not size:
            raise FormatError("empty file")
        try:
            return memoryview(mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY))
        except ValueError:  # mmap: "mmap length is greater than file size"
            raise FormatError("the file shrank while it was mapped") from None
        except OSError:  # ENODEV and kin: not mappable, readable
            pass
    return read_file(path)


def read_file(path: str | os.PathLike[str]) -> memoryview:
    """The whole file, read once into writable memory of its own (nothing refers to the
    file afterwards). The memory is a private anonymous mapping: the kernel provides each
    page as the read reaches it, where a ``bytearray`` would first be cleared (a second
    pass over every page: 0.3-0.6 s per GB)."""
    with open(path, "rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        if not size:
            raise FormatError("empty file")
        data = memoryview(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE))
        done = 0
        while done < len(data):
            got = file.readinto(data[done:])
            if not got:
                raise FormatError(f"the file shrank while it was read ({done} bytes)")
            done += got
    return data


def write_file(path: str | os.PathLike[str], parts: Iterable[Any]) -> None:
    """Write ``parts`` to a new file renamed over ``path`` (through a symlink, over its
    target): a mapping of the old file keeps the old content, an interrupted write leaves
    no partial file, and the new file gets the default permissions (``0o666`` minus the
    umask)."""
    target = os.path.realpath(path)
    temporary = f"{target}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "wb") as file:
            for part in parts:
                file.write(part)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
