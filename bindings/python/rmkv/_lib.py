"""ctypes declarations of include/rmkv.h and the search for librmkv.

The library is found, in this order, at the path in the RMKV_LIBRARY environment
variable, next to this package (a copy installed with it), under the prefix the
package was installed into (<prefix>/lib, <prefix>/lib/<multiarch>), and then by
the dynamic loader's own search (LD_LIBRARY_PATH, ldconfig's cache, /usr/local/lib).
"""
import ctypes
import ctypes.util
import os
import sys
import sysconfig

c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)


class ModelParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("device", ctypes.c_char_p),
                ("flags", ctypes.c_uint32), ("use_mmap", ctypes.c_int32)]


TokenizerProgress = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64,
                                     ctypes.c_void_p)
LogCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class TokenizerTrainParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("vocab_size", ctypes.c_size_t),
                ("min_frequency", ctypes.c_uint64), ("special_tokens", c_char_pp),
                ("n_special_tokens", ctypes.c_size_t), ("normalizer", ctypes.c_char_p),
                ("individual_digits", ctypes.c_int32), ("add_prefix_space", ctypes.c_int32),
                ("byte_alphabet", ctypes.c_int32), ("n_threads", ctypes.c_int32),
                ("progress", TokenizerProgress), ("progress_user_data", ctypes.c_void_p)]


class SessionParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("n_threads", ctypes.c_int32), ("precision", ctypes.c_int64)]


PRECISIONS = {"auto": 0, "fp32": 1, "bf16": 2}  # rmkv_precision


class SamplerParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                ("penalty_window", ctypes.c_int32), ("presence_penalty", ctypes.c_float),
                ("frequency_penalty", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("bias_tokens", c_int32_p), ("bias_values", c_float_p), ("n_bias", ctypes.c_size_t),
                ("banned_tokens", c_int32_p), ("n_banned", ctypes.c_size_t)]


PieceCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, ctypes.c_void_p)


class GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("sampler", ctypes.POINTER(SamplerParams)),
                ("max_tokens", ctypes.c_int32), ("stop_tokens", c_int32_p), ("n_stop_tokens", ctypes.c_size_t),
                ("stop_strings", c_char_pp), ("n_stop_strings", ctypes.c_size_t), ("on_piece", PieceCallback),
                ("user_data", ctypes.c_void_p)]


class GenerateResult(ctypes.Structure):
    _fields_ = [("stop_reason", ctypes.c_int), ("n_tokens", ctypes.c_int32), ("stop_index", ctypes.c_int32),
                ("text_size", ctypes.c_size_t)]


class DataInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("n_sequences", ctypes.c_size_t), ("n_targets", ctypes.c_int64),
                ("batch_index", ctypes.c_int64), ("epoch", ctypes.c_int64), ("epoch_progress", ctypes.c_double)]


class TrainParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("learning_rate", ctypes.c_float),
                ("min_learning_rate", ctypes.c_float), ("warmup_steps", ctypes.c_int64),
                ("total_steps", ctypes.c_int64), ("weight_decay", ctypes.c_float), ("beta1", ctypes.c_float),
                ("beta2", ctypes.c_float), ("epsilon", ctypes.c_float), ("grad_clip", ctypes.c_float),
                ("grad_accum_steps", ctypes.c_int32), ("dropout", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("precision", ctypes.c_int32), ("recompute", ctypes.c_int64),
                ("parallel_sequences", ctypes.c_int64), ("stacked_sequences", ctypes.c_int64),
                ("n_threads", ctypes.c_int64)]


class Batch(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("batch_size", ctypes.c_size_t), ("n_tokens", ctypes.c_size_t),
                ("tokens", c_int32_p), ("targets", c_int32_p), ("n_segments", ctypes.c_size_t),
                ("segment_lens", c_int32_p)]


class TrainStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("loss", ctypes.c_float), ("grad_norm", ctypes.c_float),
                ("learning_rate", ctypes.c_float), ("step", ctypes.c_int64), ("n_targets", ctypes.c_int64)]


class EvalStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("loss", ctypes.c_float), ("accuracy", ctypes.c_float),
                ("loss_later", ctypes.c_float), ("accuracy_later", ctypes.c_float),
                ("loss_later_reset", ctypes.c_float), ("accuracy_later_reset", ctypes.c_float),
                ("n_targets", ctypes.c_int64), ("n_targets_later", ctypes.c_int64)]


_P = ctypes.c_void_p
_S = ctypes.c_int  # rmkv_status
_Z = ctypes.c_size_t
_PP = ctypes.POINTER(ctypes.c_void_p)

# name: (restype, argtypes)
PROTOTYPES = {
    "rmkv_version": (ctypes.c_char_p, []),
    "rmkv_last_error": (ctypes.c_char_p, []),
    "rmkv_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "rmkv_set_log_callback": (None, [LogCallback, _P, ctypes.c_int]),

    "rmkv_model_default_params": (ModelParams, []),
    "rmkv_model_load": (_S, [ctypes.c_char_p, ctypes.POINTER(ModelParams), _PP]),
    "rmkv_model_load_from_memory": (_S, [_P, _Z, ctypes.POINTER(ModelParams), _PP]),
    "rmkv_model_create": (_S, [ctypes.c_char_p, _P, ctypes.c_uint64, ctypes.POINTER(ModelParams), _PP]),
    "rmkv_model_save": (_S, [_P, ctypes.c_char_p]),
    "rmkv_model_save_as": (_S, [_P, ctypes.c_char_p, ctypes.c_int]),
    "rmkv_model_tokenizer": (_P, [_P]),
    "rmkv_model_vocab_size": (_Z, [_P]),
    "rmkv_model_config_json": (_S, [_P, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_model_id": (ctypes.c_char_p, [_P]),
    "rmkv_model_n_params": (_Z, [_P]),
    "rmkv_model_free": (None, [_P]),

    "rmkv_tokenizer_load": (_S, [ctypes.c_char_p, _PP]),
    "rmkv_tokenizer_from_json": (_S, [ctypes.c_char_p, _Z, _PP]),
    "rmkv_tokenizer_save": (_S, [_P, ctypes.c_char_p]),
    "rmkv_tokenizer_to_json": (_S, [_P, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_tokenizer_encode": (_S, [_P, ctypes.c_char_p, _Z, c_int32_p, _Z, c_size_p]),
    "rmkv_tokenizer_decode": (_S, [_P, c_int32_p, _Z, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_tokenizer_token_id": (ctypes.c_int32, [_P, ctypes.c_char_p]),
    "rmkv_tokenizer_vocab_size": (_Z, [_P]),
    "rmkv_tokenizer_free": (None, [_P]),
    "rmkv_tokenizer_token_string": (_S, [_P, ctypes.c_int32, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_tokenizer_encode_batch": (_S, [_P, c_char_pp, c_size_p, _Z, ctypes.c_int32, c_int32_p, _Z, c_size_p,
                                         c_size_p]),
    "rmkv_tokenizer_train_default_params": (TokenizerTrainParams, []),
    "rmkv_tokenizer_train": (_S, [c_char_pp, _Z, ctypes.POINTER(TokenizerTrainParams), _PP]),
    "rmkv_tokenizer_train_from_texts": (_S, [c_char_pp, c_size_p, _Z, ctypes.POINTER(TokenizerTrainParams), _PP]),
    "rmkv_token_stream_new": (_S, [_P, _PP]),
    "rmkv_token_stream_feed": (_S, [_P, ctypes.c_int32, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_token_stream_flush": (_S, [_P, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_token_stream_free": (None, [_P]),

    "rmkv_session_default_params": (SessionParams, []),
    "rmkv_session_new": (_S, [_P, ctypes.POINTER(SessionParams), _PP]),
    "rmkv_session_step": (_S, [_P, _P, _Z, _P]),
    "rmkv_session_step_all": (_S, [_P, _P, _Z, _P]),
    "rmkv_sessions_step": (_S, [_P, _Z, _P, _P]),
    "rmkv_session_flush": (_S, [_P]),
    "rmkv_session_reset": (_S, [_P]),
    "rmkv_session_clone": (_S, [_P, _PP]),
    "rmkv_session_position": (_S, [_P, ctypes.POINTER(ctypes.c_uint64), c_size_p]),
    "rmkv_session_state_size": (_S, [_P, c_size_p]),
    "rmkv_session_state_save": (_S, [_P, _P, _Z, c_size_p]),
    "rmkv_session_state_load": (_S, [_P, _P, _Z]),
    "rmkv_session_state_save_file": (_S, [_P, ctypes.c_char_p]),
    "rmkv_session_state_load_file": (_S, [_P, ctypes.c_char_p]),
    "rmkv_session_free": (None, [_P]),
    "rmkv_sampler_default_params": (SamplerParams, []),
    "rmkv_session_sample": (_S, [_P, ctypes.POINTER(SamplerParams), c_int32_p]),
    "rmkv_sampler_probs": (_S, [_P, _Z, _P, _Z, ctypes.POINTER(SamplerParams), _P]),
    "rmkv_generate_default_params": (GenerateParams, []),
    "rmkv_session_generate": (_S, [_P, _P, _P, _Z, ctypes.POINTER(GenerateParams), ctypes.POINTER(GenerateResult)]),
    "rmkv_session_generate_text": (_S, [_P, _P, ctypes.c_char_p, _Z, ctypes.POINTER(GenerateParams),
                                        ctypes.POINTER(GenerateResult)]),
    "rmkv_session_chat_turn": (_S, [_P, _P, ctypes.c_char_p, _Z, ctypes.POINTER(GenerateParams),
                                    ctypes.POINTER(GenerateResult)]),

    "rmkv_data_new": (_S, [ctypes.c_char_p, _P, _PP]),
    "rmkv_data_batch_shape": (_S, [_P, c_size_p, c_size_p]),
    "rmkv_data_next": (_S, [_P, _P, _P, _Z, ctypes.POINTER(DataInfo)]),
    "rmkv_data_next_validation": (_S, [_P, _P, _P, _Z, ctypes.POINTER(DataInfo)]),
    "rmkv_data_validation_rewind": (_S, [_P]),
    "rmkv_data_state_save": (_S, [_P, _P, _Z, c_size_p]),
    "rmkv_data_state_load": (_S, [_P, _P, _Z]),
    "rmkv_data_summary_json": (_S, [_P, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_data_free": (None, [_P]),

    "rmkv_train_default_params": (TrainParams, []),
    "rmkv_trainer_new": (_S, [_P, ctypes.POINTER(TrainParams), _PP]),
    "rmkv_train_step": (_S, [_P, ctypes.POINTER(Batch), ctypes.POINTER(TrainStats)]),
    "rmkv_trainer_compute_gradients": (_S, [_P, ctypes.POINTER(Batch), c_float_p]),
    "rmkv_trainer_gradient": (_S, [_P, ctypes.c_char_p, c_float_p, _Z, c_size_p]),
    "rmkv_trainer_evaluate": (_S, [_P, ctypes.POINTER(Batch), ctypes.POINTER(EvalStats)]),
    "rmkv_trainer_save_checkpoint": (_S, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    "rmkv_trainer_load_checkpoint": (_S, [_P, ctypes.c_char_p]),
    "rmkv_checkpoint_user_json": (_S, [ctypes.c_char_p, ctypes.c_char_p, _Z, c_size_p]),
    "rmkv_trainer_step_count": (ctypes.c_int64, [_P]),
    "rmkv_trainer_free": (None, [_P]),
    "rmkv_state_tuner_new": (_S, [_P, ctypes.POINTER(TrainParams), _PP]),
    "rmkv_trainer_apply_state": (_S, [_P, _P]),
}

# Functions of later library versions: bound when the loaded library has them.
OPTIONAL = set()


def _candidates():
    env = os.environ.get("RMKV_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "librmkv.so.0")
    yield os.path.join(here, "librmkv.so")
    seen = set()
    for prefix in (sys.prefix, sys.base_prefix, "/usr/local", "/usr"):
        if prefix in seen:
            continue
        seen.add(prefix)
        libdirs = ["lib", "lib64"]
        multiarch = sysconfig.get_config_var("MULTIARCH")
        if multiarch:
            libdirs.insert(1, os.path.join("lib", multiarch))
        for d in libdirs:
            yield os.path.join(prefix, d, "librmkv.so.0")
    found = ctypes.util.find_library("rmkv")
    if found:
        yield found
    yield "librmkv.so.0"


def load_library():
    errors = []
    for path in _candidates():
        if os.path.isabs(path) and not os.path.exists(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        _declare(lib)
        return lib
    where = "RMKV_LIBRARY=" + os.environ["RMKV_LIBRARY"] if os.environ.get("RMKV_LIBRARY") else \
        "next to the package, under the Python prefix, /usr/local/lib, /usr/lib or by the dynamic loader"
    raise OSError("librmkv not found (looked " + where + "); set RMKV_LIBRARY to the path of librmkv.so"
                  + ("; " + "; ".join(errors) if errors else ""))


def _declare(lib):
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            if name in OPTIONAL:
                continue
            raise OSError(f"{lib._name} lacks {name}: it is not a librmkv of this binding's version")
        fn.restype = restype
        fn.argtypes = argtypes
