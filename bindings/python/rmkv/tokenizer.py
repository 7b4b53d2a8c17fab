"""Tokenizer and TokenStream."""
import ctypes
import os
import weakref

from ._core import (ERR_BUFFER_TOO_SMALL, _Handle, _L, _check, _lib, _path, _query_bytes,
    _query_string, _text)

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
