"""Python binding of librmkv (RMKV language models) through ctypes.

Objects own their C handle and free it on close(), at the end of a `with` block,
or when collected. A session keeps its model alive, a tokenizer taken from a
model keeps the model alive, a data pipeline keeps its tokenizer alive. A failed
call raises RmkvError (or a subclass) carrying rmkv_last_error().

Session.step returns the logits as a numpy float32 array when numpy is
importable (else a memoryview of floats). The array is a view over a buffer the
session owns and the C library writes into: it holds the logits of the latest
step and is overwritten by the next one (copy it to keep it, or pass `out=`).
"""
import ctypes
import json
import os
import queue
import threading
import weakref

from . import _lib as _L

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None

__all__ = ["RmkvError", "InvalidArgumentError", "IoError", "FormatError", "MismatchError",
           "OutOfMemoryError", "BackendError", "CancelledError", "Tokenizer", "TokenStream", "Model",
           "Session", "Generation", "sampler_probs", "Data", "Trainer", "StateTuner", "version", "library_path", "set_log_callback",
           "checkpoint_user_json"]

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


class _Handle:
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

def _train_params(vocab_size, min_frequency, special_tokens, normalizer, individual_digits, add_prefix_space,
                  byte_alphabet, n_threads, progress, keep):
    p = _lib.rmkv_tokenizer_train_default_params()
    if vocab_size is not None:
        p.vocab_size = int(vocab_size)
    p.min_frequency = int(min_frequency)
    if special_tokens is not None:
        arr = (ctypes.c_char_p * max(len(special_tokens), 1))(*[_text(s) for s in special_tokens])
        keep.append(arr)
        p.special_tokens = ctypes.cast(arr, _L.c_char_pp)
        p.n_special_tokens = len(special_tokens)
    if normalizer is not None:
        n = _text(normalizer)
        keep.append(n)
        p.normalizer = n
    p.individual_digits = 1 if individual_digits else 0
    p.add_prefix_space = 1 if add_prefix_space else 0
    p.byte_alphabet = 1 if byte_alphabet else 0
    p.n_threads = int(n_threads)
    if progress is not None:
        def tramp(stage, done, total, _user):
            try:
                return 1 if progress(stage.decode(), int(done), int(total)) else 0
            except BaseException:
                return 1
        cb = _L.TokenizerProgress(tramp)
        keep.append(cb)
        p.progress = cb
    return p


class Tokenizer(_Handle):
    """A byte-level BPE tokenizer, interchangeable with Hugging Face tokenizer.json."""
    _free = staticmethod(_lib.rmkv_tokenizer_free)

    def __init__(self, handle, owner=None):
        self._owner = owner  # a Model when borrowed from it (not freed here)
        self._children = weakref.WeakSet()  # streams and data pipelines borrowing it
        self._set(handle)

    def close(self):
        """Frees the tokenizer after closing its streams and data pipelines."""
        for child in list(getattr(self, "_children", ())):
            child.close()
        if self._owner is not None:  # borrowed from a model: the model frees it
            self._h = None
            self._owner = None
            return
        super().close()

    @classmethod
    def load(cls, path):
        out = ctypes.c_void_p()
        _check(_lib.rmkv_tokenizer_load(_path(path), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def from_json(cls, text):
        b = _text(text)
        out = ctypes.c_void_p()
        _check(_lib.rmkv_tokenizer_from_json(b, len(b), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def train(cls, files, vocab_size=None, *, min_frequency=0, special_tokens=None, normalizer=None,
              individual_digits=True, add_prefix_space=False, byte_alphabet=True, n_threads=0, progress=None):
        """Trains on text files (read line by line). progress(stage, done, total) returning True stops
        the training (CancelledError)."""
        if isinstance(files, (str, bytes, os.PathLike)):
            files = [files]
        keep = []
        p = _train_params(vocab_size, min_frequency, special_tokens, normalizer, individual_digits,
                          add_prefix_space, byte_alphabet, n_threads, progress, keep)
        arr = (ctypes.c_char_p * max(len(files), 1))(*[_path(f) for f in files])
        out = ctypes.c_void_p()
        _check(_lib.rmkv_tokenizer_train(arr, len(files), ctypes.byref(p), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def train_from_texts(cls, texts, vocab_size=None, *, min_frequency=0, special_tokens=None, normalizer=None,
                         individual_digits=True, add_prefix_space=False, byte_alphabet=True, n_threads=0,
                         progress=None):
        """Trains on texts in memory (str or bytes; each one a sequence)."""
        keep = []
        p = _train_params(vocab_size, min_frequency, special_tokens, normalizer, individual_digits,
                          add_prefix_space, byte_alphabet, n_threads, progress, keep)
        bs = [_text(t) for t in texts]
        arr = (ctypes.c_char_p * max(len(bs), 1))(*bs)
        sizes = (ctypes.c_size_t * max(len(bs), 1))(*[len(b) for b in bs])
        out = ctypes.c_void_p()
        _check(_lib.rmkv_tokenizer_train_from_texts(arr, sizes, len(bs), ctypes.byref(p), ctypes.byref(out)))
        return cls(out.value)

    def save(self, path):
        _check(_lib.rmkv_tokenizer_save(self.handle, _path(path)))

    def to_json(self):
        return _query_string(_lib.rmkv_tokenizer_to_json, self.handle)

    def encode(self, text):
        """Ids of a text (str, or bytes taken as they are). Returns a list of ints."""
        b = _text(text)
        n = ctypes.c_size_t(0)
        cap = len(b) + 16
        ids = (ctypes.c_int32 * cap)()
        st = _lib.rmkv_tokenizer_encode(self.handle, b, len(b), ids, cap, ctypes.byref(n))
        if st == ERR_BUFFER_TOO_SMALL:
            cap = n.value
            ids = (ctypes.c_int32 * cap)()
            st = _lib.rmkv_tokenizer_encode(self.handle, b, len(b), ids, cap, ctypes.byref(n))
        _check(st)
        return ids[:n.value]

    def encode_batch(self, texts, n_threads=0):
        """Ids of many texts, encoded on up to n_threads threads (0 = all cores). A list of lists."""
        bs = [_text(t) for t in texts]
        k = len(bs)
        arr = (ctypes.c_char_p * max(k, 1))(*bs)
        sizes = (ctypes.c_size_t * max(k, 1))(*[len(b) for b in bs])
        offsets = (ctypes.c_size_t * (k + 1))()
        n = ctypes.c_size_t(0)
        cap = sum(len(b) for b in bs) + 16 * k
        ids = (ctypes.c_int32 * max(cap, 1))()
        st = _lib.rmkv_tokenizer_encode_batch(self.handle, arr, sizes, k, int(n_threads), ids, cap, offsets,
                                              ctypes.byref(n))
        if st == ERR_BUFFER_TOO_SMALL:
            cap = n.value
            ids = (ctypes.c_int32 * max(cap, 1))()
            st = _lib.rmkv_tokenizer_encode_batch(self.handle, arr, sizes, k, int(n_threads), ids, cap, offsets,
                                                  ctypes.byref(n))
        _check(st)
        return [ids[offsets[i]:offsets[i + 1]] for i in range(k)]

    def decode_bytes(self, ids):
        ids = list(ids)
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        return _query_bytes(_lib.rmkv_tokenizer_decode, self.handle, arr, len(ids), guess=16 * len(ids) + 16)

    def decode(self, ids):
        """Text of ids (bytes that form no whole character come out as U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", "replace")

    def token_id(self, token):
        """Id of a vocabulary string ("<end>"), or None when absent."""
        i = _lib.rmkv_tokenizer_token_id(self.handle, _text(token))
        return None if i < 0 else int(i)

    def token_string(self, id):
        return _query_string(_lib.rmkv_tokenizer_token_string, self.handle, int(id))

    @property
    def vocab_size(self):
        return int(_lib.rmkv_tokenizer_vocab_size(self.handle))

    def __len__(self):
        return self.vocab_size

    def stream(self):
        """A streaming decoder (TokenStream) for token-by-token output."""
        return TokenStream(self)


class TokenStream(_Handle):
    """Turns tokens fed one at a time into text, never half a UTF-8 character."""
    _free = staticmethod(_lib.rmkv_token_stream_free)

    def __init__(self, tokenizer):
        self._tok = tokenizer  # borrowed: kept alive
        out = ctypes.c_void_p()
        _check(_lib.rmkv_token_stream_new(tokenizer.handle, ctypes.byref(out)))
        self._set(out.value)
        tokenizer._children.add(self)
        self._buf = ctypes.create_string_buffer(1024)
        self._size = ctypes.c_size_t(0)

    def _call(self, fn, *args):
        st = fn(self.handle, *args, self._buf, len(self._buf), ctypes.byref(self._size))
        if st == ERR_BUFFER_TOO_SMALL:
            self._buf = ctypes.create_string_buffer(self._size.value)
            st = fn(self.handle, *args, self._buf, len(self._buf), ctypes.byref(self._size))
        _check(st)
        return self._buf.raw[:self._size.value].decode("utf-8", "replace") if self._size.value else ""

    def feed(self, id):
        """Adds a token; returns the text now complete (often "")."""
        return self._call(_lib.rmkv_token_stream_feed, int(id))

    def flush(self):
        """What is held back (an incomplete character as U+FFFD); starts a new sequence."""
        return self._call(_lib.rmkv_token_stream_flush)


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

_DTYPES = {"f32": 0, "float32": 0, "bf16": 1, "bfloat16": 1, "f16": 2, "float16": 2}


def _model_params(device, use_mmap, flags=0):
    p = _lib.rmkv_model_default_params()
    if device is not None:
        p.device = _text(device)
    p.use_mmap = 1 if use_mmap else 0
    p.flags = flags
    return p


class Model(_Handle):
    """An RMKV model: immutable after loading, shared by any number of sessions."""
    _free = staticmethod(_lib.rmkv_model_free)

    def __init__(self, handle, keep=None):
        self._keep = keep
        self._children = weakref.WeakSet()
        self._set(handle)
        self._tokenizer = None

    @classmethod
    def load(cls, path, *, device=None, use_mmap=True):
        p = _model_params(device, use_mmap)
        out = ctypes.c_void_p()
        _check(_lib.rmkv_model_load(_path(path), ctypes.byref(p), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def from_bytes(cls, data, *, device=None):
        """A model from the bytes of a model file (copied by the library)."""
        b = bytes(data)
        p = _model_params(device, True)
        out = ctypes.c_void_p()
        _check(_lib.rmkv_model_load_from_memory(b, len(b), ctypes.byref(p), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def create(cls, config, tokenizer=None, seed=0, *, device=None):
        """A randomly initialised model. config: a dict or JSON text of SPEC section 2 keys."""
        text = json.dumps(config) if isinstance(config, dict) else config
        p = _model_params(device, True)
        out = ctypes.c_void_p()
        _check(_lib.rmkv_model_create(_text(text), tokenizer.handle if tokenizer is not None else None,
                                      int(seed), ctypes.byref(p), ctypes.byref(out)))
        return cls(out.value)

    def close(self):
        """Frees the model after closing its sessions, trainers and borrowed tokenizer."""
        for child in list(self._children):
            child.close()
        if self._tokenizer is not None:
            self._tokenizer.close()
            self._tokenizer = None
        super().close()

    def save(self, path, dtype="f32"):
        """Writes the model file atomically, weights as "f32", "bf16" or "f16"."""
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of f32, bf16, f16, not {dtype!r}")
        _check(_lib.rmkv_model_save_as(self.handle, _path(path), _DTYPES[dtype]))

    @property
    def tokenizer(self):
        """The model's tokenizer (borrowed; keeps the model alive), or None."""
        if self._tokenizer is None or self._tokenizer.closed:
            h = _lib.rmkv_model_tokenizer(self.handle)
            self._tokenizer = Tokenizer(h, owner=self) if h else None
        return self._tokenizer

    @property
    def vocab_size(self):
        return int(_lib.rmkv_model_vocab_size(self.handle))

    @property
    def config_json(self):
        return _query_string(_lib.rmkv_model_config_json, self.handle)

    @property
    def config(self):
        """The full configuration as a dict."""
        return json.loads(self.config_json)

    @property
    def id(self):
        """Fingerprint of config and weights (64 hex digits)."""
        return _lib.rmkv_model_id(self.handle).decode()

    @property
    def n_params(self):
        return int(_lib.rmkv_model_n_params(self.handle))

    def session(self):
        return Session(self)

    def trainer(self, **params):
        return Trainer(self, **params)

    def state_tuner(self, **params):
        """A StateTuner: trains only the initial memories, never the model's weights."""
        return StateTuner(self, **params)


# ----------------------------------------------------------------------------------------------
# Session
# ----------------------------------------------------------------------------------------------

# The per-token calls without argtypes: the arguments are ctypes objects prepared once per
# session, which ctypes passes with the least work.
_step = _lib["rmkv_session_step"]
_step.restype = ctypes.c_int
_step.argtypes = None
_step_all = _lib.rmkv_session_step_all
_SIZE1 = ctypes.c_size_t(1)
_NULL = ctypes.c_void_p(None)


class Session(_Handle):
    """The persistent memory of one conversation, story or character."""
    _free = staticmethod(_lib.rmkv_session_free)

    def __init__(self, model, _handle=None):
        self._model = model
        if _handle is None:
            out = ctypes.c_void_p()
            _check(_lib.rmkv_session_new(model.handle, None, ctypes.byref(out)))
            _handle = out.value
        self._set(_handle)
        model._children.add(self)
        v = model.vocab_size
        self._vocab = v
        self._buf = (ctypes.c_float * v)()          # the one copy the C ABI writes
        self._buf_addr = ctypes.addressof(self._buf)
        self._buf_p = ctypes.c_void_p(self._buf_addr)
        self._h_p = ctypes.c_void_p(_handle)
        self._logits = _np.frombuffer(self._buf, dtype=_np.float32) if _np is not None \
            else memoryview(self._buf).cast("B").cast("f")
        self._tok1 = (ctypes.c_int32 * 1)()
        self._tok1_addr = ctypes.addressof(self._tok1)
        self._tok1_p = ctypes.c_void_p(self._tok1_addr)
        self._generation = None   # weak reference to a running Generation

    def close(self):
        """Cancels a running generation, then frees the session."""
        g = self._generation() if getattr(self, "_generation", None) is not None else None
        if g is not None:
            g.close()
        super().close()

    @property
    def model(self):
        return self._model

    def step(self, tokens, *, logits=True, out=None):
        """Feeds one token (int) or a sequence of tokens. Returns the logits after the last one
        (a view over the session's buffer, overwritten by the next step), or None when
        logits=False. out: a writable float32 C-contiguous array of vocab_size to fill instead."""
        if not self._h:
            raise ValueError("Session is closed")
        if type(tokens) is not int and hasattr(tokens, "__index__") and not hasattr(tokens, "__len__"):
            tokens = tokens.__index__()     # numpy integer scalars (np.argmax, ...)
        if type(tokens) is int:
            if not -0x80000000 <= tokens <= 0x7FFFFFFF:
                raise InvalidArgumentError(ERR_INVALID_ARGUMENT, f"token id {tokens} is not an int32")
            self._tok1[0] = tokens
            ptr, n = self._tok1_p, _SIZE1
        else:
            arr, count = _as_int32(tokens)
            if count == 0:
                raise InvalidArgumentError(ERR_INVALID_ARGUMENT, "step needs at least one token")
            ptr, n = arr, ctypes.c_size_t(count)
        if not logits:
            dst = _NULL
        elif out is not None:
            dst = ctypes.c_void_p(_out_ptr(out, self._vocab))
        else:
            dst = self._buf_p
        st = _step(self._h_p, ptr, n, dst)
        if st:
            raise _error(st)
        if not logits:
            return None
        return out if out is not None else self._logits

    def step_all(self, tokens):
        """Feeds tokens; returns the logits after every token, shape (n, vocab_size) (a new array)."""
        arr, n = _as_int32(tokens)
        if n == 0:
            raise InvalidArgumentError(ERR_INVALID_ARGUMENT, "step_all needs at least one token")
        if _np is not None:
            res = _np.empty((n, self._vocab), dtype=_np.float32)
            _check(_step_all(self.handle, arr, n, res.ctypes.data))
            return res
        res = (ctypes.c_float * (n * self._vocab))()
        _check(_step_all(self.handle, arr, n, res))
        mv = memoryview(res).cast("B").cast("f")
        return [mv[i * self._vocab:(i + 1) * self._vocab] for i in range(n)]

    @property
    def logits(self):
        """The logits of the latest step that asked for them (the session's buffer)."""
        return self._logits

    def flush(self):
        _check(_lib.rmkv_session_flush(self.handle))

    def reset(self):
        _check(_lib.rmkv_session_reset(self.handle))

    def clone(self):
        """An independent copy (branching a story)."""
        out = ctypes.c_void_p()
        _check(_lib.rmkv_session_clone(self.handle, ctypes.byref(out)))
        return Session(self._model, _handle=out.value)

    def __copy__(self):
        return self.clone()

    @property
    def position(self):
        """Tokens read so far."""
        pos, fill = ctypes.c_uint64(0), ctypes.c_size_t(0)
        _check(_lib.rmkv_session_position(self.handle, ctypes.byref(pos), ctypes.byref(fill)))
        return int(pos.value)

    @property
    def segment_fill(self):
        """Tokens in the current, not yet folded segment."""
        pos, fill = ctypes.c_uint64(0), ctypes.c_size_t(0)
        _check(_lib.rmkv_session_position(self.handle, ctypes.byref(pos), ctypes.byref(fill)))
        return int(fill.value)

    @property
    def state_size(self):
        n = ctypes.c_size_t(0)
        _check(_lib.rmkv_session_state_size(self.handle, ctypes.byref(n)))
        return int(n.value)

    def save_state(self):
        """The state as bytes (to embed in a game's save file)."""
        n = self.state_size
        buf = ctypes.create_string_buffer(max(n, 1))
        size = ctypes.c_size_t(0)
        _check(_lib.rmkv_session_state_save(self.handle, buf, n, ctypes.byref(size)))
        return buf.raw[:size.value]

    def load_state(self, data):
        """Replaces the state by one from save_state (bytes-like). Validated first; unchanged on error."""
        b = bytes(data)
        _check(_lib.rmkv_session_state_load(self.handle, b, len(b)))

    def save_state_file(self, path):
        _check(_lib.rmkv_session_state_save_file(self.handle, _path(path)))

    def load_state_file(self, path):
        _check(_lib.rmkv_session_state_load_file(self.handle, _path(path)))

    def __bytes__(self):
        return self.save_state()

    def sample(self, temperature=0.8, **sampler):
        """Draws the next token from the logits of the last token stepped (not stepped). Keyword
        arguments: top_k, top_p, min_p, repetition_penalty, penalty_window, presence_penalty,
        frequency_penalty, seed, logit_bias ({token: bias}; -inf bans), banned_tokens."""
        keep = []
        p = _sampler_params(keep, temperature=temperature, **sampler)
        tok = ctypes.c_int32(0)
        _check(_lib.rmkv_session_sample(self.handle, ctypes.byref(p), ctypes.byref(tok)))
        return int(tok.value)

    def generate(self, prompt=None, *, tokenizer=None, max_tokens=256, stop_tokens=(), stop_strings=(),
                 chat=False, **sampler):
        """Streams a continuation: an iterator (Generation) of text pieces, never half a character.
        prompt: text (str/bytes, encoded by the tokenizer), token ids, or None to continue from the
        last token stepped. chat=True runs one chat turn (rmkv_session_chat_turn: the prompt is the
        user's text; <start> ... <end>; the memory is flushed after). The generation runs on a worker
        thread; closing the iterator (or leaving a `with` block, or breaking out of a for loop and
        dropping it) cancels it. After the end, .result holds stop_reason ("limit", "token", "string",
        "cancelled"), n_tokens, stop_index, text_size. Sampler keywords as for sample(); the session
        must not be used otherwise until the generation ends."""
        return Generation(self, prompt, tokenizer, max_tokens, stop_tokens, stop_strings, chat, sampler)

    def generate_text(self, prompt=None, **kw):
        """The whole continuation as one string (see generate)."""
        with self.generate(prompt, **kw) as g:
            return "".join(g)


_SAMPLER_KEYS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "penalty_window",
                 "presence_penalty", "frequency_penalty", "seed")


def _sampler_params(keep, logit_bias=None, banned_tokens=None, **kw):
    p = _lib.rmkv_sampler_default_params()
    p.struct_size = ctypes.sizeof(_L.SamplerParams)
    for k, v in kw.items():
        if k not in _SAMPLER_KEYS:
            raise TypeError(f"unknown sampler parameter {k!r} (known: {', '.join(_SAMPLER_KEYS)}, logit_bias, "
                            "banned_tokens)")
        setattr(p, k, v)
    if logit_bias:
        toks = (ctypes.c_int32 * len(logit_bias))(*[int(t) for t in logit_bias])
        vals = (ctypes.c_float * len(logit_bias))(*[float(v) for v in logit_bias.values()])
        keep += [toks, vals]
        p.bias_tokens = ctypes.cast(toks, _L.c_int32_p)
        p.bias_values = ctypes.cast(vals, _L.c_float_p)
        p.n_bias = len(logit_bias)
    if banned_tokens:
        b = list(banned_tokens)
        arr = (ctypes.c_int32 * len(b))(*b)
        keep.append(arr)
        p.banned_tokens = ctypes.cast(arr, _L.c_int32_p)
        p.n_banned = len(b)
    return p


def sampler_probs(logits, recent=(), **sampler):
    """The distribution sample() draws from, for the given logits (float32 sequence) and recent
    tokens (oldest first, for the penalties): a numpy array (or list) of probabilities."""
    keep = []
    p = _sampler_params(keep, **sampler)
    if _np is not None:
        lg = _np.ascontiguousarray(logits, dtype=_np.float32)
        out = _np.empty(lg.size, dtype=_np.float32)
        lp, op, n = lg.ctypes.data, out.ctypes.data, lg.size
    else:
        lg = (ctypes.c_float * len(logits))(*logits)
        out = (ctypes.c_float * len(logits))()
        lp, op, n = ctypes.addressof(lg), ctypes.addressof(out), len(logits)
    rec, nrec = _as_int32(recent)
    _check(_lib.rmkv_sampler_probs(lp, n, rec if nrec else None, nrec, ctypes.byref(p), op))
    return out if _np is not None else list(out)


_STOP_REASONS = {0: "limit", 1: "token", 2: "string", 3: "cancelled"}
_DONE = object()


class _GenState:
    """What the worker thread and the C callback share. It refers to no Generation, so that
    dropping a Generation runs its __del__ (which cancels) while the call is still running."""

    def __init__(self):
        self.queue = queue.Queue()
        self.cancel = False
        self.error = None
        self.result = None


def _generate_worker(state, session, fn, tok_handle, prompt, n, params, keep):
    res = _L.GenerateResult()
    try:
        st = fn(session.handle, tok_handle, prompt, n, ctypes.byref(params), ctypes.byref(res))
        if st != OK:
            state.error = _error(st)   # rmkv_last_error() is per thread: read it on this one
        else:
            state.result = {"stop_reason": _STOP_REASONS.get(res.stop_reason, res.stop_reason),
                            "n_tokens": res.n_tokens, "stop_index": res.stop_index, "text_size": res.text_size}
    except BaseException as e:  # a closed session, ...
        state.error = e
    finally:
        del keep
        state.queue.put(_DONE)


class Generation:
    """Iterator over the text pieces of one generation (Session.generate), running the C call on a
    worker thread. close(), the end of a `with` block, or dropping the iterator cancels it; close()
    waits for the call to return. .result is set once the generation has ended."""

    def __init__(self, session, prompt, tokenizer, max_tokens, stop_tokens, stop_strings, chat, sampler):
        tok = tokenizer if tokenizer is not None else session.model.tokenizer
        if tok is None:
            raise ValueError("the model has no tokenizer: pass tokenizer=")
        session.handle  # raises when closed
        busy = session._generation() if session._generation is not None else None
        if busy is not None and busy._thread is not None:
            raise RuntimeError("the session is generating already: close that generation first")
        keep = [tok]
        sp = _sampler_params(keep, **sampler)
        keep.append(sp)
        gp = _lib.rmkv_generate_default_params()
        gp.struct_size = ctypes.sizeof(_L.GenerateParams)
        gp.sampler = ctypes.pointer(sp)
        gp.max_tokens = int(max_tokens)
        if stop_tokens:
            st = (ctypes.c_int32 * len(stop_tokens))(*stop_tokens)
            keep.append(st)
            gp.stop_tokens = ctypes.cast(st, _L.c_int32_p)
            gp.n_stop_tokens = len(stop_tokens)
        if stop_strings:
            ss = (ctypes.c_char_p * len(stop_strings))(*[_text(x) for x in stop_strings])
            keep.append(ss)
            gp.stop_strings = ctypes.cast(ss, _L.c_char_pp)
            gp.n_stop_strings = len(stop_strings)
        state = self._state = _GenState()

        def on_piece(text, size, _user):
            state.queue.put(ctypes.string_at(text, size).decode("utf-8", "replace"))
            return 1 if state.cancel else 0

        cb = _L.PieceCallback(on_piece)
        keep.append(cb)
        gp.on_piece = cb
        if chat:
            b = _text(prompt if prompt is not None else b"")
            fn, arg, n = _lib.rmkv_session_chat_turn, b, len(b)
        elif prompt is None:
            fn, arg, n = _lib.rmkv_session_generate, None, 0
        elif isinstance(prompt, (str, bytes, bytearray)):
            b = _text(prompt)
            fn, arg, n = _lib.rmkv_session_generate_text, b, len(b)
        else:
            arr, n = _as_int32(prompt)
            keep.append(arr)
            fn, arg = _lib.rmkv_session_generate, (arr if n else None)
        self._thread = threading.Thread(target=_generate_worker,
                                        args=(state, session, fn, tok.handle, arg, n, gp, keep), daemon=True)
        session._generation = weakref.ref(self)
        self._thread.start()

    @property
    def result(self):
        return self._state.result

    def __iter__(self):
        return self

    def __next__(self):
        if self._thread is None:
            raise StopIteration
        item = self._state.queue.get()
        if item is _DONE:
            self._thread.join()
            self._thread = None
            if self._state.error is not None:
                e, self._state.error = self._state.error, None
                raise e
            raise StopIteration
        return item

    def close(self):
        """Cancels the generation (if still running) and waits for the C call to return."""
        if self._thread is None:
            return
        self._state.cancel = True
        while self._state.queue.get() is not _DONE:
            pass
        self._thread.join()
        self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _as_int32(tokens):
    """(pointer-compatible object, count) for a sequence of ids (list, tuple, numpy array, array)."""
    if _np is not None and isinstance(tokens, _np.ndarray):
        a = _np.ascontiguousarray(tokens, dtype=_np.int32).reshape(-1)
        return a.ctypes.data_as(_L.c_int32_p), a.size
    seq = list(tokens)
    return (ctypes.c_int32 * max(len(seq), 1))(*seq), len(seq)


def _out_ptr(out, n):
    if _np is not None and isinstance(out, _np.ndarray):
        if out.dtype != _np.float32 or not out.flags.c_contiguous or not out.flags.writeable or out.size < n:
            raise ValueError(f"out must be a writable C-contiguous float32 array of at least {n} elements")
        return out.ctypes.data
    mv = memoryview(out)
    if mv.readonly or mv.nbytes < 4 * n:
        raise ValueError(f"out must be a writable buffer of at least {n} floats")
    return ctypes.addressof(ctypes.c_char.from_buffer(mv))


# ----------------------------------------------------------------------------------------------
# Training data
# ----------------------------------------------------------------------------------------------

def _int_matrix(rows, cols):
    if _np is not None:
        return _np.empty((rows, cols), dtype=_np.int32)
    return (ctypes.c_int32 * (rows * cols))()


def _rows(a, rows, cols):
    if _np is not None:
        return a
    return [list(a[r * cols:(r + 1) * cols]) for r in range(rows)]


def _ptr(a):
    return a.ctypes.data if _np is not None and isinstance(a, _np.ndarray) else ctypes.addressof(a)


class Data(_Handle):
    """A training data pipeline (text and JSONL sources) making batches; see rmkv.h for the config keys."""
    _free = staticmethod(_lib.rmkv_data_free)

    def __init__(self, config, tokenizer):
        text = json.dumps(config) if isinstance(config, dict) else config
        self._tok = tokenizer
        out = ctypes.c_void_p()
        _check(_lib.rmkv_data_new(_text(text), tokenizer.handle, ctypes.byref(out)))
        self._set(out.value)
        tokenizer._children.add(self)
        b, t = ctypes.c_size_t(0), ctypes.c_size_t(0)
        _check(_lib.rmkv_data_batch_shape(self.handle, ctypes.byref(b), ctypes.byref(t)))
        self.batch_size, self.n_tokens = int(b.value), int(t.value)

    def _next(self, fn):
        B, T = self.batch_size, self.n_tokens
        tokens, targets = _int_matrix(B, T), _int_matrix(B, T)
        info = _L.DataInfo()
        info.struct_size = ctypes.sizeof(_L.DataInfo)
        _check(fn(self.handle, _ptr(tokens), _ptr(targets), B * T, ctypes.byref(info)))
        d = {k: getattr(info, k) for k, _ in _L.DataInfo._fields_ if k != "struct_size"}
        return _rows(tokens, B, T), _rows(targets, B, T), d

    def next(self):
        """The next training batch: (tokens, targets, info) with tokens and targets of shape
        (batch_size, n_tokens) (numpy int32, or lists), targets -1 where there is no loss."""
        return self._next(_lib.rmkv_data_next)

    def __iter__(self):
        while True:
            yield self.next()

    def next_validation(self):
        """The next validation batch; info["n_sequences"] is 0 when the pass is over."""
        return self._next(_lib.rmkv_data_next_validation)

    def validation_batches(self):
        """Iterates over one whole validation pass, from its start."""
        self.rewind_validation()
        while True:
            tokens, targets, info = self.next_validation()
            if info["n_sequences"] == 0:
                return
            yield tokens, targets, info

    def rewind_validation(self):
        _check(_lib.rmkv_data_validation_rewind(self.handle))

    def save_state(self):
        """The position, as bytes (small JSON)."""
        return _query_bytes(_lib.rmkv_data_state_save, self.handle, guess=4096)

    def load_state(self, data):
        b = bytes(data)
        _check(_lib.rmkv_data_state_load(self.handle, b, len(b)))

    @property
    def summary(self):
        return json.loads(_query_string(_lib.rmkv_data_summary_json, self.handle))


# ----------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------

_PRECISIONS = {"auto": 0, "fp32": 1, "bf16": 2}


class _BatchArgs:
    """An rmkv_batch over caller arrays, keeping them alive during the call."""

    def __init__(self, tokens, targets, segment_lens):
        self.keep = []
        tk, B, T = self._matrix(tokens)
        tg, B2, T2 = self._matrix(targets)
        if (B, T) != (B2, T2):
            raise ValueError(f"tokens are {B}x{T} but targets are {B2}x{T2}")
        b = _L.Batch()
        b.struct_size = ctypes.sizeof(_L.Batch)
        b.batch_size, b.n_tokens = B, T
        b.tokens, b.targets = tk, tg
        if segment_lens:
            arr = (ctypes.c_int32 * len(segment_lens))(*segment_lens)
            self.keep.append(arr)
            b.n_segments = len(segment_lens)
            b.segment_lens = ctypes.cast(arr, _L.c_int32_p)
        self.batch = b

    def _matrix(self, m):
        if _np is not None and isinstance(m, _np.ndarray):
            a = _np.ascontiguousarray(m, dtype=_np.int32)
            if a.ndim == 1:
                a = a.reshape(1, -1)
            if a.ndim != 2:
                raise ValueError("a batch is a 2-D array (batch_size, n_tokens)")
            self.keep.append(a)
            return a.ctypes.data_as(_L.c_int32_p), a.shape[0], a.shape[1]
        rows = [list(r) for r in m]
        if rows and not isinstance(rows[0], list):
            rows = [rows]
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ValueError("a batch is a non-empty list of rows of equal length")
        flat = [x for r in rows for x in r]
        arr = (ctypes.c_int32 * max(len(flat), 1))(*flat)
        self.keep.append(arr)
        return ctypes.cast(arr, _L.c_int32_p), len(rows), len(rows[0])


def _struct_dict(s):
    return {k: getattr(s, k) for k, _ in type(s)._fields_ if k != "struct_size"}


class Trainer(_Handle):
    """Trains the model it is made with, in place. Keyword arguments are the fields of
    rmkv_train_params (learning_rate, warmup_steps, total_steps, grad_clip, ...);
    precision is "auto", "fp32" or "bf16"."""
    _free = staticmethod(_lib.rmkv_trainer_free)
    _new = staticmethod(_lib.rmkv_trainer_new)

    def __init__(self, model, **params):
        p = _lib.rmkv_train_default_params()
        names = {k for k, _ in _L.TrainParams._fields_} - {"struct_size"}
        for k, v in params.items():
            if k not in names:
                raise TypeError(f"unknown training parameter {k!r} (known: {', '.join(sorted(names))})")
            if k == "precision" and isinstance(v, str):
                if v not in _PRECISIONS:
                    raise ValueError(f"precision must be auto, fp32 or bf16, not {v!r}")
                v = _PRECISIONS[v]
            setattr(p, k, v)
        self._model = model
        out = ctypes.c_void_p()
        _check(type(self)._new(model.handle, ctypes.byref(p), ctypes.byref(out)))
        self._set(out.value)
        model._children.add(self)

    def step(self, tokens, targets, segment_lens=None):
        """One training step on a batch (rows of tokens and of targets, -1 = no loss). Returns a dict:
        loss, grad_norm, learning_rate, step, n_targets."""
        b = _BatchArgs(tokens, targets, segment_lens)
        stats = _L.TrainStats()
        stats.struct_size = ctypes.sizeof(_L.TrainStats)
        _check(_lib.rmkv_train_step(self.handle, ctypes.byref(b.batch), ctypes.byref(stats)))
        return _struct_dict(stats)

    def compute_gradients(self, tokens, targets, segment_lens=None):
        """Loss and gradients without an update. Returns the loss."""
        b = _BatchArgs(tokens, targets, segment_lens)
        loss = ctypes.c_float(0)
        _check(_lib.rmkv_trainer_compute_gradients(self.handle, ctypes.byref(b.batch), ctypes.byref(loss)))
        return float(loss.value)

    def gradient(self, name):
        """The current gradient of a parameter (SPEC section 3 name), flat float32."""
        n = ctypes.c_size_t(0)
        st = _lib.rmkv_trainer_gradient(self.handle, _text(name), None, 0, ctypes.byref(n))
        if st not in (OK, ERR_BUFFER_TOO_SMALL):
            raise _error(st)
        if _np is not None:
            g = _np.empty(n.value, dtype=_np.float32)
            ptr = g.ctypes.data_as(_L.c_float_p)
        else:
            g = (ctypes.c_float * max(n.value, 1))()
            ptr = ctypes.cast(g, _L.c_float_p)
        _check(_lib.rmkv_trainer_gradient(self.handle, _text(name), ptr, n.value, ctypes.byref(n)))
        return g if _np is not None else list(g[:n.value])

    def evaluate(self, tokens, targets, segment_lens=None):
        """Validation loss, accuracy and the memory effect on a batch. Returns a dict."""
        b = _BatchArgs(tokens, targets, segment_lens)
        stats = _L.EvalStats()
        stats.struct_size = ctypes.sizeof(_L.EvalStats)
        _check(_lib.rmkv_trainer_evaluate(self.handle, ctypes.byref(b.batch), ctypes.byref(stats)))
        return _struct_dict(stats)

    def save_checkpoint(self, path, user=None):
        """Writes a checkpoint; user: a dict (or JSON text) stored with it."""
        text = None if user is None else _text(json.dumps(user) if isinstance(user, dict) else user)
        _check(_lib.rmkv_trainer_save_checkpoint(self.handle, _path(path), text))

    def load_checkpoint(self, path):
        _check(_lib.rmkv_trainer_load_checkpoint(self.handle, _path(path)))

    @property
    def step_count(self):
        return int(_lib.rmkv_trainer_step_count(self.handle))


class StateTuner(Trainer):
    """State tuning: a trainer of only the initial memories (its own copies; the model and its
    file stay unchanged). step, evaluate, compute_gradients, gradient and step_count work as for
    a Trainer; checkpoints are refused. apply(session) makes the tuned memories the session's
    starting point (position 0); save that session's state to keep the result (a few KB)."""
    _new = staticmethod(_lib.rmkv_state_tuner_new)

    def apply(self, session):
        """Resets `session` (of the tuned model) to position 0 with the tuned memories."""
        _check(_lib.rmkv_trainer_apply_state(self.handle, session.handle))

    def tuned_session(self):
        """A new session of the model starting from the tuned memories."""
        s = Session(self._model)
        try:
            self.apply(s)
        except BaseException:
            s.close()
            raise
        return s


def checkpoint_user_json(path):
    """The user data stored in a checkpoint, as a dict (None when there is none)."""
    text = _query_string(_lib.rmkv_checkpoint_user_json, _path(path))
    return json.loads(text) if text else None
