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
from ._core import (OK, ERR_INVALID_ARGUMENT, ERR_IO, ERR_FORMAT, ERR_MISMATCH, ERR_OUT_OF_MEMORY,  # noqa: F401
                    ERR_BUFFER_TOO_SMALL, ERR_BACKEND, ERR_CANCELLED, ERR_INTERNAL)
from ._core import (CancelledError, BackendError, FormatError, InvalidArgumentError, IoError, MismatchError,
                    OutOfMemoryError, RmkvError, library_path, set_log_callback, version)
from .model import Generation, Model, Session, sampler_probs, step_together
from .tokenizer import Tokenizer, TokenStream
from .training import Data, StateTuner, Trainer, checkpoint_user_json

__all__ = ["RmkvError", "InvalidArgumentError", "IoError", "FormatError", "MismatchError",
           "OutOfMemoryError", "BackendError", "CancelledError", "Tokenizer", "TokenStream", "Model",
           "Session", "Generation", "sampler_probs", "step_together", "Data", "Trainer", "StateTuner", "version", "library_path", "set_log_callback",
           "checkpoint_user_json"]
