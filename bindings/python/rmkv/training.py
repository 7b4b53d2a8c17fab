"""Data, Trainer and StateTuner."""
import ctypes
import json

from ._core import (ERR_BUFFER_TOO_SMALL, OK, _Handle, _L, _check, _error, _lib, _np, _path,
    _query_bytes, _query_string, _text)
from .model import Session

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
                if v not in _L.PRECISIONS:
                    raise ValueError(f"precision must be auto, fp32 or bf16, not {v!r}")
                v = _L.PRECISIONS[v]
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

    def tuned_session(self, n_threads=0, precision="auto"):
        """A new session of the model starting from the tuned memories; n_threads and
        precision as for Model.session."""
        s = Session(self._model, n_threads=n_threads, precision=precision)
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
