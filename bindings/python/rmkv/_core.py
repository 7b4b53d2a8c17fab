"""The library handle, status codes, errors and the helpers every object uses."""
import ctypes
import os

from . import _lib as _L

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None


_lib = _L.load_library()

OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_MISMATCH = 4
ERR_OUT_OF_MEMORY = 5
ERR_BUFFER_TOO_SMALL = 6
ERR_BACKEND = 7
ERR_CANCELLED = 8
ERR_INTERNAL = 9


class RmkvError(Exception):
    """A failed librmkv call: .status (int), .status_name ("RMKV_ERR_FORMAT"), .message."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = _lib.rmkv_status_string(self.status).decode()
        self.message = message
        super().__init__(f"{self.status_name}: {message}" if message else self.status_name)


class InvalidArgumentError(RmkvError, ValueError):
    pass


class IoError(RmkvError):
    pass


class FormatError(RmkvError):
    pass


class MismatchError(RmkvError):
    pass


class OutOfMemoryError(RmkvError, MemoryError):
    pass


class BackendError(RmkvError):
    pass


class CancelledError(RmkvError):
    pass


_ERRORS = {ERR_INVALID_ARGUMENT: InvalidArgumentError, ERR_IO: IoError, ERR_FORMAT: FormatError,
           ERR_MISMATCH: MismatchError, ERR_OUT_OF_MEMORY: OutOfMemoryError, ERR_BACKEND: BackendError,
           ERR_CANCELLED: CancelledError}


def _error(status):
    msg = _lib.rmkv_last_error().decode("utf-8", "replace")
    return _ERRORS.get(status, RmkvError)(status, msg)


def _check(status):
    if status != OK:
        raise _error(status)


def _path(p):
    return os.fsencode(p)


def _text(t):
    if isinstance(t, str):
        return t.encode("utf-8", "surrogatepass")
    return bytes(t)


def _query_string(fn, *args):
    """Calls a (buf, capacity, &needed) function returning a NUL-terminated string."""
    needed = ctypes.c_size_t(0)
    buf = ctypes.create_string_buffer(4096)
    st = fn(*args, buf, len(buf), ctypes.byref(needed))
    if st == ERR_BUFFER_TOO_SMALL:
        buf = ctypes.create_string_buffer(needed.value)
        st = fn(*args, buf, len(buf), ctypes.byref(needed))
    _check(st)
    return buf.raw[:max(needed.value - 1, 0)].decode("utf-8", "replace")


def _query_bytes(fn, *args, guess=0):
    """Calls a (buf, capacity, &size) function returning bytes (no NUL)."""
    size = ctypes.c_size_t(0)
    buf = ctypes.create_string_buffer(max(guess, 1))
    st = fn(*args, buf, guess, ctypes.byref(size))
    if st == ERR_BUFFER_TOO_SMALL:
        buf = ctypes.create_string_buffer(size.value)
        st = fn(*args, buf, size.value, ctypes.byref(size))
    _check(st)
    return buf.raw[:size.value]


def version():
    """Version of the loaded library, "MAJOR.MINOR.PATCH"."""
    return _lib.rmkv_version().decode()


def library_path():
    """Path of the loaded librmkv."""
    return _lib._name


_log_cb = None  # the installed ctypes callback, kept alive


def set_log_callback(callback, min_level=1):
    """Installs callback(level: int, line: str) for the library's log lines at
    min_level and above (0 debug, 1 info, 2 warn, 3 error); None silences it.
    The callback may be called on any thread; exceptions in it are ignored."""
    global _log_cb
    if callback is None:
        _lib.rmkv_set_log_callback(_L.LogCallback(), None, int(min_level))
        _log_cb = None
        return

    def tramp(level, line, _user):
        try:
            callback(int(level), line.decode("utf-8", "replace"))
        except Exception:
            pass

    cb = _L.LogCallback(tramp)
    _lib.rmkv_set_log_callback(cb, None, int(min_level))
    _log_cb = cb


class _Closing:
    """close() at the end of a `with` block and when collected."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Handle(_Closing):
    """Owns one C handle; subclasses set _free."""
    _free = None
    _h = None

    def _set(self, handle):
        self._h = handle

    @property
    def handle(self):
        if not self._h:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._h

    @property
    def closed(self):
        return not self._h

    def close(self):
        h, self._h = self._h, None
        if h and self._free is not None:
            type(self)._free(h)
