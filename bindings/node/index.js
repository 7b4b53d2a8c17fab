'use strict';
// Node.js binding of librmkv through koffi (no compiler needed at install).
//
// The library is found at RMKV_LIBRARY (a path to librmkv.so.0), else under
// /usr/local/lib and /usr/lib, else by the dynamic loader (LD_LIBRARY_PATH).
// Objects own their C handle: call close() (or use `using` with Symbol.dispose)
// when done; a FinalizationRegistry frees what was forgotten. A failed call
// throws RmkvError carrying rmkv_last_error().

const fs = require('fs');
const path = require('path');
const koffi = require('koffi');

function findLibrary() {
  if (process.env.RMKV_LIBRARY) return process.env.RMKV_LIBRARY;
  const dirs = [];
  for (const prefix of ['/usr/local', '/usr']) {
    dirs.push(path.join(prefix, 'lib'));
    if (process.arch === 'x64') dirs.push(path.join(prefix, 'lib/x86_64-linux-gnu'));
    if (process.arch === 'arm64') dirs.push(path.join(prefix, 'lib/aarch64-linux-gnu'));
    dirs.push(path.join(prefix, 'lib64'));
  }
  for (const d of dirs) {
    const p = path.join(d, 'librmkv.so.0');
    if (fs.existsSync(p)) return p;
  }
  return 'librmkv.so.0';
}

let lib;
try {
  lib = koffi.load(findLibrary());
} catch (e) {
  throw new Error(`librmkv not found (${e.message}); set RMKV_LIBRARY to the path of librmkv.so.0`);
}

koffi.opaque('rmkv_model');
koffi.opaque('rmkv_tokenizer');
koffi.opaque('rmkv_session');
koffi.opaque('rmkv_token_stream');
koffi.struct('rmkv_model_params', { struct_size: 'size_t', device: 'const char *', flags: 'uint32_t', use_mmap: 'int32_t' });
koffi.struct('rmkv_session_params', { struct_size: 'size_t', n_threads: 'int32_t', precision: 'int64_t' });
koffi.proto('int rmkv_tokenizer_progress_callback(const char *stage, uint64_t done, uint64_t total, void *user_data)');
koffi.struct('rmkv_tokenizer_train_params', {
  struct_size: 'size_t', vocab_size: 'size_t', min_frequency: 'uint64_t', special_tokens: 'const char **',
  n_special_tokens: 'size_t', normalizer: 'const char *', individual_digits: 'int32_t', add_prefix_space: 'int32_t',
  byte_alphabet: 'int32_t', n_threads: 'int32_t', progress: 'rmkv_tokenizer_progress_callback *',
  progress_user_data: 'void *',
});
koffi.struct('rmkv_sampler_params', {
  struct_size: 'size_t', temperature: 'float', top_k: 'int32_t', top_p: 'float', min_p: 'float',
  repetition_penalty: 'float', penalty_window: 'int32_t', presence_penalty: 'float', frequency_penalty: 'float',
  seed: 'uint64_t', bias_tokens: 'const int32_t *', bias_values: 'const float *', n_bias: 'size_t',
  banned_tokens: 'const int32_t *', n_banned: 'size_t',
});
koffi.proto('int rmkv_piece_callback(const void *text, size_t size, void *user_data)');
koffi.struct('rmkv_generate_params', {
  struct_size: 'size_t', sampler: 'const rmkv_sampler_params *', max_tokens: 'int32_t',
  stop_tokens: 'const int32_t *', n_stop_tokens: 'size_t', stop_strings: 'const char **', n_stop_strings: 'size_t',
  on_piece: 'rmkv_piece_callback *', user_data: 'void *',
});
koffi.struct('rmkv_generate_result', { stop_reason: 'int', n_tokens: 'int32_t', stop_index: 'int32_t', text_size: 'size_t' });

const C = {};
for (const decl of [
  'const char *rmkv_version(void)',
  'const char *rmkv_last_error(void)',
  'const char *rmkv_status_string(int status)',
  'rmkv_model_params rmkv_model_default_params(void)',
  'int rmkv_model_load(const char *path, const rmkv_model_params *params, _Out_ rmkv_model **out)',
  'int rmkv_model_load_from_memory(const void *data, size_t size, const rmkv_model_params *params, _Out_ rmkv_model **out)',
  'int rmkv_model_create(const char *config, const rmkv_tokenizer *tok, uint64_t seed, const rmkv_model_params *params, _Out_ rmkv_model **out)',
  'int rmkv_model_save_as(const rmkv_model *model, const char *path, int dtype)',
  'const rmkv_tokenizer *rmkv_model_tokenizer(const rmkv_model *model)',
  'size_t rmkv_model_vocab_size(const rmkv_model *model)',
  'int rmkv_model_config_json(const rmkv_model *model, void *buf, size_t capacity, _Out_ size_t *needed)',
  'const char *rmkv_model_id(const rmkv_model *model)',
  'size_t rmkv_model_n_params(const rmkv_model *model)',
  'void rmkv_model_free(rmkv_model *model)',
  'int rmkv_tokenizer_load(const char *path, _Out_ rmkv_tokenizer **out)',
  'int rmkv_tokenizer_from_json(const void *json, size_t size, _Out_ rmkv_tokenizer **out)',
  'int rmkv_tokenizer_save(const rmkv_tokenizer *tok, const char *path)',
  'int rmkv_tokenizer_to_json(const rmkv_tokenizer *tok, void *buf, size_t capacity, _Out_ size_t *needed)',
  'int rmkv_tokenizer_encode(const rmkv_tokenizer *tok, const void *text, size_t size, void *ids, size_t capacity, _Out_ size_t *n_ids)',
  'int rmkv_tokenizer_decode(const rmkv_tokenizer *tok, const void *ids, size_t n_ids, void *text, size_t capacity, _Out_ size_t *size)',
  'int32_t rmkv_tokenizer_token_id(const rmkv_tokenizer *tok, const char *token)',
  'size_t rmkv_tokenizer_vocab_size(const rmkv_tokenizer *tok)',
  'void rmkv_tokenizer_free(rmkv_tokenizer *tok)',
  'int rmkv_tokenizer_token_string(const rmkv_tokenizer *tok, int32_t id, void *buf, size_t capacity, _Out_ size_t *needed)',
  'rmkv_tokenizer_train_params rmkv_tokenizer_train_default_params(void)',
  'int rmkv_tokenizer_train(const char **files, size_t n_files, const rmkv_tokenizer_train_params *params, _Out_ rmkv_tokenizer **out)',
  'int rmkv_tokenizer_train_from_texts(const char **texts, const size_t *sizes, size_t n_texts, const rmkv_tokenizer_train_params *params, _Out_ rmkv_tokenizer **out)',
  'int rmkv_token_stream_new(const rmkv_tokenizer *tok, _Out_ rmkv_token_stream **out)',
  'int rmkv_token_stream_feed(rmkv_token_stream *s, int32_t id, void *text, size_t capacity, _Out_ size_t *size)',
  'int rmkv_token_stream_flush(rmkv_token_stream *s, void *text, size_t capacity, _Out_ size_t *size)',
  'void rmkv_token_stream_free(rmkv_token_stream *s)',
  'rmkv_session_params rmkv_session_default_params(void)',
  'int rmkv_session_new(const rmkv_model *model, const rmkv_session_params *params, _Out_ rmkv_session **out)',
  'int rmkv_session_step(rmkv_session *s, const void *tokens, size_t n_tokens, void *logits)',
  'int rmkv_session_step_all(rmkv_session *s, const void *tokens, size_t n_tokens, void *logits)',
  'int rmkv_sessions_step(rmkv_session **sessions, size_t n_sessions, const void *tokens, void *logits)',
  'int rmkv_session_flush(rmkv_session *s)',
  'int rmkv_session_reset(rmkv_session *s)',
  'int rmkv_session_clone(const rmkv_session *s, _Out_ rmkv_session **out)',
  'int rmkv_session_position(const rmkv_session *s, _Out_ uint64_t *position, _Out_ size_t *segment_fill)',
  'int rmkv_session_state_size(const rmkv_session *s, _Out_ size_t *size)',
  'int rmkv_session_state_save(const rmkv_session *s, void *buf, size_t capacity, _Out_ size_t *size)',
  'int rmkv_session_state_load(rmkv_session *s, const void *buf, size_t size)',
  'int rmkv_session_state_save_file(const rmkv_session *s, const char *path)',
  'int rmkv_session_state_load_file(rmkv_session *s, const char *path)',
  'void rmkv_session_free(rmkv_session *s)',
  'rmkv_sampler_params rmkv_sampler_default_params(void)',
  'int rmkv_session_sample(rmkv_session *s, const rmkv_sampler_params *params, _Out_ int32_t *token)',
  'rmkv_generate_params rmkv_generate_default_params(void)',
  'int rmkv_session_generate(rmkv_session *s, const rmkv_tokenizer *tok, const void *prompt, size_t n_prompt, const rmkv_generate_params *params, _Out_ rmkv_generate_result *result)',
  'int rmkv_session_generate_text(rmkv_session *s, const rmkv_tokenizer *tok, const void *prompt, size_t size, const rmkv_generate_params *params, _Out_ rmkv_generate_result *result)',
  'int rmkv_session_chat_turn(rmkv_session *s, const rmkv_tokenizer *tok, const void *text, size_t size, const rmkv_generate_params *params, _Out_ rmkv_generate_result *result)',
]) {
  const fn = lib.func(decl);
  C[decl.match(/(rmkv_\w+)\(/)[1]] = fn;
}

const OK = 0, ERR_BUFFER_TOO_SMALL = 6;
const STATUS = ['OK', 'INVALID_ARGUMENT', 'IO', 'FORMAT', 'MISMATCH', 'OUT_OF_MEMORY', 'BUFFER_TOO_SMALL',
  'BACKEND', 'CANCELLED', 'INTERNAL'];

class RmkvError extends Error {
  constructor(status, message) {
    const name = C.rmkv_status_string(status);
    super(message ? `${name}: ${message}` : name);
    this.name = 'RmkvError';
    this.status = status;          // numeric rmkv_status
    this.statusName = name;        // "RMKV_ERR_FORMAT"
    this.code = 'RMKV_ERR_' + (STATUS[status] || 'UNKNOWN');
    this.rmkvMessage = message;    // rmkv_last_error()
  }
}

function check(status) {
  if (status !== OK) throw new RmkvError(status, C.rmkv_last_error());
}

function asBytes(text) {
  if (typeof text === 'string') return Buffer.from(text, 'utf8');
  if (Buffer.isBuffer(text)) return text;
  if (ArrayBuffer.isView(text)) return Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  if (text instanceof ArrayBuffer) return Buffer.from(text);
  throw new TypeError('text must be a string, a Buffer or a typed array');
}

function asInt32(tokens) {
  if (tokens instanceof Int32Array) return tokens;
  if (typeof tokens === 'number') return Int32Array.of(tokens);
  return Int32Array.from(tokens);
}

// Calls fn(...args, buf, capacity, needed) for a NUL-terminated string.
function queryString(fn, ...args) {
  const needed = [0];
  let buf = Buffer.alloc(4096);
  let st = fn(...args, buf, buf.length, needed);
  if (st === ERR_BUFFER_TOO_SMALL) {
    buf = Buffer.alloc(needed[0]);
    st = fn(...args, buf, buf.length, needed);
  }
  check(st);
  return buf.toString('utf8', 0, Math.max(needed[0] - 1, 0));
}

// Objects that borrow another (sessions of a model, streams of a tokenizer), held weakly so
// that a forgotten one is still collected; the owner closes those alive before it is freed.
class Borrowers {
  constructor() { this._refs = new Set(); }
  add(obj) {
    for (const r of this._refs) {
      const o = r.deref();
      if (!o || o.closed) this._refs.delete(r);
    }
    this._refs.add(new WeakRef(obj));
  }
  closeAll() {
    for (const r of this._refs) {
      const o = r.deref();
      if (o) o.close();
    }
    this._refs.clear();
  }
}

const registry = new FinalizationRegistry(({ free, handle }) => free(handle));

class Handle {
  constructor(handle, free) {
    this._h = handle;
    this._free = free;
    if (free) registry.register(this, { free, handle }, this);
  }
  get handle() {
    if (this._h === null) throw new Error(`${this.constructor.name} is closed`);
    return this._h;
  }
  get closed() { return this._h === null; }
  close() {
    if (this._h === null) return;
    const h = this._h;
    this._h = null;
    if (this._free) {
      registry.unregister(this);
      this._free(h);
    }
  }
  [Symbol.dispose || Symbol.for('nodejs.dispose')]() { this.close(); }
}

function version() { return C.rmkv_version(); }

function trainParams(opts, keep) {
  const p = C.rmkv_tokenizer_train_default_params();
  if (opts.vocabSize !== undefined) p.vocab_size = opts.vocabSize;
  if (opts.minFrequency !== undefined) p.min_frequency = opts.minFrequency;
  if (opts.specialTokens !== undefined) {
    p.special_tokens = opts.specialTokens.length ? opts.specialTokens : null;
    p.n_special_tokens = opts.specialTokens.length;
  }
  if (opts.normalizer !== undefined) p.normalizer = opts.normalizer;
  if (opts.individualDigits !== undefined) p.individual_digits = opts.individualDigits ? 1 : 0;
  if (opts.addPrefixSpace !== undefined) p.add_prefix_space = opts.addPrefixSpace ? 1 : 0;
  if (opts.byteAlphabet !== undefined) p.byte_alphabet = opts.byteAlphabet ? 1 : 0;
  if (opts.nThreads !== undefined) p.n_threads = opts.nThreads;
  if (opts.progress) {
    const cb = koffi.register((stage, done, total) => {
      try { return opts.progress(stage, Number(done), Number(total)) ? 1 : 0; } catch (e) { return 1; }
    }, 'rmkv_tokenizer_progress_callback *');
    keep.push(cb);
    p.progress = cb;
  }
  return p;
}

function withTrainParams(opts, f) {
  const keep = [];
  try {
    return f(trainParams(opts || {}, keep));
  } finally {
    for (const cb of keep) koffi.unregister(cb);
  }
}

class Tokenizer extends Handle {
  constructor(handle, owner) {
    super(handle, owner ? null : C.rmkv_tokenizer_free);
    this._owner = owner || null;   // a Model when borrowed from it
    this._streams = new Borrowers();
  }
  static load(file) {
    const out = [null];
    check(C.rmkv_tokenizer_load(file, out));
    return new Tokenizer(out[0]);
  }
  static fromJSON(text) {
    const b = asBytes(text);
    const out = [null];
    check(C.rmkv_tokenizer_from_json(b, b.length, out));
    return new Tokenizer(out[0]);
  }
  // opts: vocabSize, minFrequency, specialTokens, normalizer, individualDigits, addPrefixSpace,
  // byteAlphabet, nThreads, progress(stage, done, total) -> true to stop.
  static train(files, opts) {
    const out = [null];
    withTrainParams(opts, (p) => check(C.rmkv_tokenizer_train(files, files.length, p, out)));
    return new Tokenizer(out[0]);
  }
  static trainFromTexts(texts, opts) {
    const bufs = texts.map((t) => asBytes(t));
    const sizes = new BigUint64Array(bufs.map((b) => BigInt(b.length)));
    const out = [null];
    // Buffers go as pointers to their bytes; sizes bound each text, so NUL bytes inside stay text.
    withTrainParams(opts, (p) => check(C.rmkv_tokenizer_train_from_texts(bufs, sizes, bufs.length, p, out)));
    return new Tokenizer(out[0]);
  }
  save(file) { check(C.rmkv_tokenizer_save(this.handle, file)); }
  toJSON() { return queryString(C.rmkv_tokenizer_to_json, this.handle); }
  // Ids of a text (string, or bytes as they are), as an Int32Array.
  encode(text) {
    const b = asBytes(text);
    const n = [0];
    let ids = new Int32Array(b.length + 16);
    let st = C.rmkv_tokenizer_encode(this.handle, b, b.length, ids, ids.length, n);
    if (st === ERR_BUFFER_TOO_SMALL) {
      ids = new Int32Array(n[0]);
      st = C.rmkv_tokenizer_encode(this.handle, b, b.length, ids, ids.length, n);
    }
    check(st);
    return ids.subarray(0, n[0]);
  }
  decodeBytes(ids) {
    const a = asInt32(ids);
    const n = [0];
    let buf = Buffer.alloc(16 * a.length + 16);
    let st = C.rmkv_tokenizer_decode(this.handle, a, a.length, buf, buf.length, n);
    if (st === ERR_BUFFER_TOO_SMALL) {
      buf = Buffer.alloc(n[0]);
      st = C.rmkv_tokenizer_decode(this.handle, a, a.length, buf, buf.length, n);
    }
    check(st);
    return buf.subarray(0, n[0]);
  }
  decode(ids) { return this.decodeBytes(ids).toString('utf8'); }
  tokenId(token) {
    const i = C.rmkv_tokenizer_token_id(this.handle, token);
    return i < 0 ? null : i;
  }
  tokenString(id) { return queryString(C.rmkv_tokenizer_token_string, this.handle, id); }
  get vocabSize() { return Number(C.rmkv_tokenizer_vocab_size(this.handle)); }
  stream() { return new TokenStream(this); }
  close() {
    this._streams.closeAll();
    if (this._owner) { this._h = null; this._owner = null; return; }
    super.close();
  }
}

class TokenStream extends Handle {
  constructor(tokenizer) {
    const out = [null];
    check(C.rmkv_token_stream_new(tokenizer.handle, out));
    super(out[0], C.rmkv_token_stream_free);
    this._tok = tokenizer;
    tokenizer._streams.add(this);
    this._buf = Buffer.alloc(1024);
    this._n = [0];
  }
  _call(fn, ...args) {
    let st = fn(this.handle, ...args, this._buf, this._buf.length, this._n);
    if (st === ERR_BUFFER_TOO_SMALL) {
      this._buf = Buffer.alloc(this._n[0]);
      st = fn(this.handle, ...args, this._buf, this._buf.length, this._n);
    }
    check(st);
    return this._buf.toString('utf8', 0, this._n[0]);
  }
  // Adds a token; returns the text now complete (often '').
  feed(id) { return this._call(C.rmkv_token_stream_feed, id); }
  flush() { return this._call(C.rmkv_token_stream_flush); }
}

const DTYPES = { f32: 0, bf16: 1, f16: 2 };

function modelParams(opts) {
  const p = C.rmkv_model_default_params();
  if (opts && opts.device) p.device = opts.device;
  if (opts && opts.useMmap === false) p.use_mmap = 0;
  return p;
}

class Model extends Handle {
  constructor(handle, keep) {
    super(handle, C.rmkv_model_free);
    this._keep = keep || null;
    this._children = new Borrowers();   // sessions
    this._tokenizer = undefined;
  }
  static load(file, opts) {
    const out = [null];
    check(C.rmkv_model_load(file, modelParams(opts), out));
    return new Model(out[0]);
  }
  static fromBuffer(data, opts) {
    const b = asBytes(data);
    const out = [null];
    check(C.rmkv_model_load_from_memory(b, b.length, modelParams(opts), out));
    return new Model(out[0]);
  }
  // config: an object or JSON text of SPEC section 2 keys.
  static create(config, tokenizer, seed, opts) {
    const text = typeof config === 'string' ? config : JSON.stringify(config);
    const out = [null];
    check(C.rmkv_model_create(text, tokenizer ? tokenizer.handle : null, BigInt(seed || 0), modelParams(opts), out));
    return new Model(out[0]);
  }
  close() {
    this._children.closeAll();
    if (this._tokenizer) this._tokenizer.close();
    super.close();
  }
  save(file, dtype = 'f32') {
    if (!(dtype in DTYPES)) throw new TypeError(`dtype must be f32, bf16 or f16, not ${dtype}`);
    check(C.rmkv_model_save_as(this.handle, file, DTYPES[dtype]));
  }
  get tokenizer() {
    if (this._tokenizer === undefined || (this._tokenizer && this._tokenizer.closed)) {
      const h = C.rmkv_model_tokenizer(this.handle);
      this._tokenizer = h ? new Tokenizer(h, this) : null;
    }
    return this._tokenizer;
  }
  get vocabSize() { return Number(C.rmkv_model_vocab_size(this.handle)); }
  get configJSON() { return queryString(C.rmkv_model_config_json, this.handle); }
  get config() { return JSON.parse(this.configJSON); }
  get id() { return C.rmkv_model_id(this.handle); }
  get nParams() { return Number(C.rmkv_model_n_params(this.handle)); }
  // opts: {nThreads, precision: 'auto' | 'fp32' | 'bf16'} (rmkv_session_params).
  session(opts) { return new Session(this, null, opts); }
}

const PRECISIONS = { auto: 0, fp32: 1, bf16: 2 };  // rmkv_precision

class Session extends Handle {
  constructor(model, handle, opts) {
    opts = opts || {};
    if (!handle) {
      const p = C.rmkv_session_default_params();
      if (opts.nThreads !== undefined) p.n_threads = opts.nThreads;
      if (opts.precision !== undefined) {
        if (!Object.hasOwn(PRECISIONS, opts.precision)) throw new RangeError(`precision must be auto, fp32 or bf16, not ${opts.precision}`);
        p.precision = PRECISIONS[opts.precision];
      }
      const out = [null];
      check(C.rmkv_session_new(model.handle, p, out));
      handle = out[0];
    }
    super(handle, C.rmkv_session_free);
    this.model = model;
    model._children.add(this);
    this._vocab = model.vocabSize;
    this._logits = new Float32Array(this._vocab);   // the one copy the C ABI writes
  }
  // Feeds a token or tokens; returns the logits after the last one: a Float32Array owned by the
  // session, overwritten by the next step (slice() it to keep it). {logits: false} skips them.
  step(tokens, opts) {
    const a = asInt32(tokens);
    if (a.length === 0) throw new RmkvError(1, 'step needs at least one token');
    const want = !(opts && opts.logits === false);
    check(C.rmkv_session_step(this.handle, a, a.length, want ? this._logits : null));
    return want ? this._logits : null;
  }
  // Logits after every token: an array of Float32Array views over one new buffer.
  stepAll(tokens) {
    const a = asInt32(tokens);
    if (a.length === 0) throw new RmkvError(1, 'stepAll needs at least one token');
    const all = new Float32Array(a.length * this._vocab);
    check(C.rmkv_session_step_all(this.handle, a, a.length, all));
    const rows = [];
    for (let i = 0; i < a.length; i++) rows.push(all.subarray(i * this._vocab, (i + 1) * this._vocab));
    return rows;
  }
  get logits() { return this._logits; }
  flush() { check(C.rmkv_session_flush(this.handle)); }
  reset() { check(C.rmkv_session_reset(this.handle)); }
  clone() {
    const out = [null];
    check(C.rmkv_session_clone(this.handle, out));
    return new Session(this.model, out[0]);
  }
  get position() {
    const p = [0], f = [0];
    check(C.rmkv_session_position(this.handle, p, f));
    return Number(p[0]);
  }
  get segmentFill() {
    const p = [0], f = [0];
    check(C.rmkv_session_position(this.handle, p, f));
    return Number(f[0]);
  }
  get stateSize() {
    const n = [0];
    check(C.rmkv_session_state_size(this.handle, n));
    return Number(n[0]);
  }
  // The state as a Buffer (for a game's save file). Not zero-filled first: the
  // library writes every byte of the state.
  saveState() {
    const buf = Buffer.allocUnsafeSlow(this.stateSize);
    const n = [0];
    check(C.rmkv_session_state_save(this.handle, buf, buf.length, n));
    return buf.subarray(0, Number(n[0]));
  }
  loadState(data) {
    const b = asBytes(data);
    check(C.rmkv_session_state_load(this.handle, b, b.length));
  }
  saveStateFile(file) { check(C.rmkv_session_state_save_file(this.handle, file)); }
  loadStateFile(file) { check(C.rmkv_session_state_load_file(this.handle, file)); }
  // Draws the next token (not stepped). opts: temperature (0 = greedy), topK, topP, minP,
  // repetitionPenalty, penaltyWindow, presencePenalty, frequencyPenalty, seed, logitBias
  // ({token: bias}, -Infinity bans), bannedTokens.
  sample(opts) {
    const t = [0];
    check(C.rmkv_session_sample(this.handle, samplerParams(opts || {}), t));
    return t[0];
  }
  // Generates a continuation and streams it: opts.onPiece(text) receives each piece (never half a
  // character) and may return true to cancel. prompt: a string or Buffer (encoded by the
  // tokenizer), token ids, or null to continue after the last token stepped. opts: maxTokens
  // (default 256), stopTokens, stopStrings, chat (one chat turn: <start> ... <end>, then flush),
  // tokenizer (default the model's), and the sampler options of sample(). Returns
  // {text, stopReason: 'limit'|'token'|'string'|'cancelled', nTokens, stopIndex}.
  generate(prompt, opts) {
    const o = Object.assign({}, opts || {});
    const tok = o.tokenizer || this.model.tokenizer;
    if (!tok) throw new TypeError('the model has no tokenizer: pass opts.tokenizer');
    const onPiece = o.onPiece;
    const known = new Set(['maxTokens', 'stopTokens', 'stopStrings', 'chat', 'tokenizer', 'onPiece']);
    const sampler = {};
    for (const k of Object.keys(o)) if (!known.has(k)) sampler[k] = o[k];
    const gp = C.rmkv_generate_default_params();
    gp.sampler = samplerParams(sampler);
    if (o.maxTokens !== undefined) gp.max_tokens = o.maxTokens;
    if (o.stopTokens && o.stopTokens.length) {
      gp.stop_tokens = Int32Array.from(o.stopTokens);
      gp.n_stop_tokens = o.stopTokens.length;
    }
    if (o.stopStrings && o.stopStrings.length) {
      gp.stop_strings = o.stopStrings;
      gp.n_stop_strings = o.stopStrings.length;
    }
    const pieces = [];
    let thrown = null;
    const cb = koffi.register((text, size) => {
      const piece = Buffer.from(koffi.decode(text, 'uint8_t', Number(size))).toString('utf8');
      pieces.push(piece);
      try {
        return onPiece && onPiece(piece) ? 1 : 0;
      } catch (e) {
        thrown = e;
        return 1;
      }
    }, 'rmkv_piece_callback *');
    gp.on_piece = cb;
    const res = {};
    let st;
    try {
      if (o.chat) {
        const b = asBytes(prompt == null ? '' : prompt);
        st = C.rmkv_session_chat_turn(this.handle, tok.handle, b, b.length, gp, res);
      } else if (prompt == null) {
        st = C.rmkv_session_generate(this.handle, tok.handle, null, 0, gp, res);
      } else if (typeof prompt === 'string' || Buffer.isBuffer(prompt)) {
        const b = asBytes(prompt);
        st = C.rmkv_session_generate_text(this.handle, tok.handle, b, b.length, gp, res);
      } else {
        const a = asInt32(prompt);
        st = C.rmkv_session_generate(this.handle, tok.handle, a.length ? a : null, a.length, gp, res);
      }
    } finally {
      koffi.unregister(cb);
    }
    if (thrown) throw thrown;
    check(st);
    return { text: pieces.join(''), stopReason: STOP_REASONS[res.stop_reason], nTokens: res.n_tokens,
      stopIndex: res.stop_index };
  }
}

const STOP_REASONS = ['limit', 'token', 'string', 'cancelled'];
const SAMPLER_KEYS = { temperature: 'temperature', topK: 'top_k', topP: 'top_p', minP: 'min_p',
  repetitionPenalty: 'repetition_penalty', penaltyWindow: 'penalty_window',
  presencePenalty: 'presence_penalty', frequencyPenalty: 'frequency_penalty', seed: 'seed' };

// One token for each session (all of one model), computed together: their rows share every
// matrix product. tokens[i] goes to sessions[i]. Returns the logits, one Float32Array view per
// session over one new buffer, or null with {logits: false}.
function stepTogether(sessions, tokens, opts) {
  const a = asInt32(tokens);
  if (a.length !== sessions.length) throw new RmkvError(1, `${sessions.length} sessions but ${a.length} tokens`);
  const want = !(opts && opts.logits === false);
  const vocab = sessions.length ? sessions[0]._vocab : 0;
  const all = want ? new Float32Array(a.length * vocab) : null;
  check(C.rmkv_sessions_step(sessions.map((s) => s.handle), a.length, a, all));
  if (!want) return null;
  const rows = [];
  for (let i = 0; i < a.length; i++) rows.push(all.subarray(i * vocab, (i + 1) * vocab));
  return rows;
}

function samplerParams(o) {
  const p = C.rmkv_sampler_default_params();
  for (const k of Object.keys(o)) {
    if (k === 'logitBias') {
      const ks = Object.keys(o.logitBias);
      if (ks.length) {
        p.bias_tokens = Int32Array.from(ks.map(Number));
        p.bias_values = Float32Array.from(ks.map((t) => o.logitBias[t]));
        p.n_bias = ks.length;
      }
    } else if (k === 'bannedTokens') {
      if (o.bannedTokens.length) {
        p.banned_tokens = Int32Array.from(o.bannedTokens);
        p.n_banned = o.bannedTokens.length;
      }
    } else if (k in SAMPLER_KEYS) {
      p[SAMPLER_KEYS[k]] = k === 'seed' ? BigInt(o[k]) : o[k];
    } else {
      throw new TypeError(`unknown sampler option ${k}`);
    }
  }
  return p;
}

module.exports = { RmkvError, Tokenizer, TokenStream, Model, Session, stepTogether, version, libraryPath: findLibrary() };
