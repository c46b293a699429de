"""``openat2(2)`` with ``RESOLVE_CACHED``: open a path only if that cannot wait for storage.

Linux 5.12+ resolves the path from the dentry cache alone under ``RESOLVE_CACHED`` and
fails with ``EAGAIN`` when any lookup would need I/O or revalidation (what io_uring uses
for its non-blocking opens). Python has no wrapper, so this calls the syscall through
ctypes (about 1 µs). :func:`supported` is False where the kernel or the C library lacks
it; callers then take their blocking path.
"""

from __future__ import annotations

import ctypes
import errno
import os

RESOLVE_NO_XDEV = 0x01  # never cross a mount point (stay on the one we know)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04  # fail with ELOOP at any symlink
RESOLVE_BENEATH = 0x08  # never leave the directory the path is relative to
RESOLVE_CACHED = 0x20  # fail with EAGAIN unless the lookup needs no I/O
_SYS_OPENAT2 = 437  # the same number on every architecture (new-style syscall table)


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def _load() -> object | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = [
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.POINTER(_OpenHow),
        ctypes.c_size_t,
    ]
    return syscall


_syscall = _load()
_HOWS: dict[tuple[int, int], object] = {}  # (flags, resolve) -> a pointer to its open_how
_HOW_SIZE = ctypes.sizeof(_OpenHow)
_works: bool | None = None  # None: not tried yet


def openat2(dirfd: int, path: bytes, flags: int, resolve: int) -> int:
    """The new descriptor; raises OSError (``EAGAIN``: it would have to wait)."""
    if _syscall is None:
        raise OSError(errno.ENOSYS, "openat2 is not available")
    how = _HOWS.get((flags, resolve))
    if how is None:  # made once per kind of open; the kernel only reads it
        how = _HOWS[flags, resolve] = ctypes.pointer(_OpenHow(flags, 0, resolve))
    fd: int = _syscall(_SYS_OPENAT2, dirfd, path, how, _HOW_SIZE)  # type: ignore[operator]
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def supported() -> bool:
    """Whether this kernel has ``openat2`` and ``RESOLVE_CACHED`` (asked once)."""
    global _works
    if _works is None:
        try:
            os.close(openat2(-100, b"/", os.O_PATH | os.O_CLOEXEC, RESOLVE_CACHED))  # AT_FDCWD
            _works = True
        except OSError as error:
            # ENOSYS: no openat2 (before 5.6); EINVAL: no RESOLVE_CACHED (before 5.12).
            # EAGAIN for "/" cannot happen, but is no reason to give up either.
            _works = error.errno == errno.EAGAIN
    return _works
