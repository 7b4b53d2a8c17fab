"""Model, Session, Generation and sampler_probs."""
import ctypes
import json
import queue
import threading
import weakref

from ._core import (ERR_INVALID_ARGUMENT, InvalidArgumentError, OK, _Closing, _Handle, _L, _check,
    _error, _lib, _np, _path, _query_string, _text)
from .tokenizer import Tokenizer

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

    def session(self, n_threads=0, precision="auto"):
        return Session(self, n_threads=n_threads, precision=precision)

    def trainer(self, **params):
        from .training import Trainer  # training imports this module

        return Trainer(self, **params)

    def state_tuner(self, **params):
        """A StateTuner: trains only the initial memories, never the model's weights."""
        from .training import StateTuner

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


_bytes_new = ctypes.pythonapi.PyBytes_FromStringAndSize
_bytes_new.restype = ctypes.py_object
_bytes_new.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
_bytes_at = ctypes.pythonapi.PyBytes_AsString
_bytes_at.restype = ctypes.c_void_p
_bytes_at.argtypes = [ctypes.py_object]


class Session(_Handle):
    """The persistent memory of one conversation, story or character. n_threads: CPU
    threads of its computations (0: OpenMP's setting); precision: "auto", "fp32" or
    "bf16", of its products with BF16 weights (a BF16 model file;
    rmkv_session_params.precision)."""
    _free = staticmethod(_lib.rmkv_session_free)

    def __init__(self, model, _handle=None, n_threads=0, precision="auto"):
        self._model = model
        if _handle is None:
            if precision not in _L.PRECISIONS:
                raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
            p = _lib.rmkv_session_default_params()
            p.n_threads = int(n_threads)
            p.precision = _L.PRECISIONS[precision]
            out = ctypes.c_void_p()
            _check(_lib.rmkv_session_new(model.handle, ctypes.byref(p), ctypes.byref(out)))
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
        # The library writes straight into a new bytes object of the right size: no
        # zeroing and no copy (it is not shared with anything before it is returned).
        out = _bytes_new(None, n)
        size = ctypes.c_size_t(0)
        _check(_lib.rmkv_session_state_save(self.handle, _bytes_at(out), n, ctypes.byref(size)))
        return out if size.value == n else out[:size.value]

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


def step_together(sessions, tokens, *, logits=True):
    """One token for each session (all of one model), computed together: their rows share every
    matrix product, which costs much less than stepping them one by one. tokens[i] goes to
    sessions[i]. Returns the logits, row i for sessions[i] (a new numpy array (n, vocab_size), or
    a list of rows without numpy), or None when logits=False."""
    sessions = list(sessions)
    arr, n = _as_int32(tokens)
    if n != len(sessions):
        raise InvalidArgumentError(ERR_INVALID_ARGUMENT, f"{len(sessions)} sessions but {n} tokens")
    handles = (ctypes.c_void_p * max(n, 1))(*[s.handle for s in sessions])
    vocab = sessions[0]._vocab if sessions else 0
    if not logits:
        _check(_lib.rmkv_sessions_step(handles, n, arr, None))
        return None
    if _np is not None:
        res = _np.empty((n, vocab), dtype=_np.float32)
        _check(_lib.rmkv_sessions_step(handles, n, arr, res.ctypes.data))
        return res
    res = (ctypes.c_float * (n * vocab))()
    _check(_lib.rmkv_sessions_step(handles, n, arr, res))
    mv = memoryview(res).cast("B").cast("f")
    return [mv[i * vocab:(i + 1) * vocab] for i in range(n)]


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


class Generation(_Closing):
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
