'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const rmkv = require('..');

const TEXTS = Array(8).fill([
  'The cat sat on the mat. The dog ran after the cat.\n',
  'Once upon a time there was a little game character who remembered everything.\n',
  'Numbers 12345 and 67890, caf\u00e9 na\u00efve \u00fcber \u4e16\u754c \u{1F600}.\n']).flat();
const CONFIG = { d_model: 32, n_layers: 2, n_heads: 2, memory_slots: 4, segment_len: 8 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rmkv-node-'));
const tok = rmkv.Tokenizer.trainFromTexts(TEXTS, { vocabSize: 320 });
const nfd = (s) => s.normalize('NFD');

test('version', () => {
  assert.match(rmkv.version(), /^\d+\.\d+\.\d+$/);
});

test('tokenizer: encode, decode, bytes, vocabulary', () => {
  for (const t of TEXTS.slice(0, 3).concat(['', 'x'])) {
    const ids = tok.encode(t);
    assert.ok(ids instanceof Int32Array);
    assert.strictEqual(tok.decode(ids), nfd(t));
    assert.strictEqual(tok.decode(Array.from(ids)), nfd(t));
  }
  assert.deepStrictEqual(tok.encode(Buffer.from(TEXTS[0])), tok.encode(TEXTS[0]));
  assert.deepStrictEqual(tok.decodeBytes(tok.encode('caf\u00e9')), Buffer.from('cafe\u0301'));
  const long = '\u{1F600}'.repeat(1000);
  assert.strictEqual(tok.decode(tok.encode(long)), long);
  assert.ok(tok.vocabSize > 256 && tok.vocabSize <= 320);
  const end = tok.tokenId('<end>');
  assert.strictEqual(tok.tokenString(end), '<end>');
  assert.strictEqual(tok.tokenId('no such token'), null);
  assert.throws(() => tok.decode([1, 1 << 20]), (e) => e instanceof rmkv.RmkvError && e.status === 1 &&
    e.code === 'RMKV_ERR_INVALID_ARGUMENT' && e.message.includes(String(1 << 20)));
  assert.throws(() => tok.tokenString(tok.vocabSize + 5), rmkv.RmkvError);
});

test('tokenizer: JSON, files, training options, cancel, missing file', () => {
  const json = tok.toJSON();
  assert.strictEqual(JSON.parse(json).model.type, 'BPE');
  const t2 = rmkv.Tokenizer.fromJSON(json);
  assert.deepStrictEqual(t2.encode(TEXTS[1]), tok.encode(TEXTS[1]));
  t2.close();
  tok.save(path.join(tmp, 'tok.json'));
  const t3 = rmkv.Tokenizer.load(path.join(tmp, 'tok.json'));
  assert.strictEqual(t3.toJSON(), json);
  t3.close();
  assert.throws(() => rmkv.Tokenizer.fromJSON('{not json'), (e) => e.code === 'RMKV_ERR_FORMAT');
  assert.throws(() => rmkv.Tokenizer.load(path.join(tmp, 'missing.json')),
    (e) => e.code === 'RMKV_ERR_IO' && e.rmkvMessage.includes('missing.json'));

  const corpus = path.join(tmp, 'corpus.txt');
  fs.writeFileSync(corpus, TEXTS.join(''));
  const stages = [];
  const t4 = rmkv.Tokenizer.train([corpus], { vocabSize: 300, specialTokens: ['<s>', '</s>'], normalizer: '',
    nThreads: 1, progress: (stage) => { stages.push(stage); } });
  assert.strictEqual(t4.tokenId('<s>'), 0);
  assert.strictEqual(t4.tokenId('<end>'), null);
  assert.strictEqual(t4.decode(t4.encode(TEXTS[2])), TEXTS[2]);
  assert.ok(stages.includes('merges'));
  t4.close();
  assert.throws(() => rmkv.Tokenizer.trainFromTexts(TEXTS, { vocabSize: 400, progress: () => true }),
    (e) => e.code === 'RMKV_ERR_CANCELLED');
  assert.throws(() => rmkv.Tokenizer.train([path.join(tmp, 'nope.txt')], { vocabSize: 300 }),
    (e) => e.code === 'RMKV_ERR_IO' && e.message.includes('nope.txt'));
  const t5 = rmkv.Tokenizer.trainFromTexts([Buffer.from('a\0b a\0b a\0b')], { vocabSize: 260, normalizer: '' });
  assert.strictEqual(t5.decode(t5.encode('a\0b')), 'a\0b');
  t5.close();
});

test('tokenizer: streaming decode equals decode', () => {
  const text = TEXTS[2] + TEXTS[0];
  const ids = tok.encode(text);
  const s = tok.stream();
  const pieces = Array.from(ids, (i) => s.feed(i));
  pieces.push(s.flush());
  assert.strictEqual(pieces.join(''), nfd(text));
  for (const p of pieces) assert.ok(!p.includes('\ufffd'));
  assert.throws(() => s.feed(-1), rmkv.RmkvError);
  s.close();
  s.close();
  assert.throws(() => s.feed(1), /closed/);
});

test('model: create, config, save, load, fromBuffer, errors', () => {
  const m = rmkv.Model.create(CONFIG, tok, 7);
  assert.strictEqual(m.config.d_model, 32);
  assert.strictEqual(m.vocabSize, tok.vocabSize);
  assert.ok(m.nParams > 0);
  assert.match(m.id, /^[0-9a-f]{64}$/);
  assert.deepStrictEqual(m.tokenizer.encode('cat'), tok.encode('cat'));
  const file = path.join(tmp, 'm.safetensors');
  m.save(file);
  const a = rmkv.Model.load(file);
  const b = rmkv.Model.fromBuffer(fs.readFileSync(file));
  const c = rmkv.Model.load(file, { useMmap: false });
  assert.strictEqual(a.id, m.id);
  assert.strictEqual(b.id, m.id);
  assert.strictEqual(c.id, m.id);
  m.save(path.join(tmp, 'm16.safetensors'), 'bf16');
  assert.ok(fs.statSync(path.join(tmp, 'm16.safetensors')).size < fs.statSync(file).size);
  assert.throws(() => m.save(file, 'f8'), TypeError);
  assert.throws(() => rmkv.Model.create({ d_modle: 32, vocab_size: 10 }),
    (e) => e.code === 'RMKV_ERR_INVALID_ARGUMENT' && e.message.includes('d_modle'));
  const data = fs.readFileSync(file);
  fs.writeFileSync(path.join(tmp, 'corrupt.safetensors'), data.subarray(0, data.length >> 1));
  assert.throws(() => rmkv.Model.load(path.join(tmp, 'corrupt.safetensors')),
    (e) => e.code === 'RMKV_ERR_FORMAT' && e.rmkvMessage.length > 0);
  assert.throws(() => rmkv.Model.fromBuffer(Buffer.alloc(7)), (e) => e.code === 'RMKV_ERR_FORMAT');
  const ts = m.tokenizer.stream();
  for (const x of [m, a, b, c]) x.close();
  assert.throws(() => m.vocabSize, /closed/);
  assert.ok(ts.closed);
});

test('session options: threads and precision reach rmkv_session_params', () => {
  const m = rmkv.Model.create(CONFIG, tok, 7);
  const f16 = path.join(tmp, 'opts16.safetensors'), f32 = path.join(tmp, 'opts32.safetensors');
  m.save(f16, 'bf16');
  const h = rmkv.Model.load(f16);
  h.save(f32);
  const w = rmkv.Model.load(f32);
  const toks = Array.from(tok.encode(TEXTS[1]));
  const x = h.session({ nThreads: 1, precision: 'fp32' }).step(toks), y = w.session({ precision: 'fp32' }).step(toks);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) < 1e-4);
  assert.throws(() => h.session({ precision: 'half' }), RangeError);
  assert.throws(() => h.session({ precision: 'toString' }), RangeError);
  assert.throws(() => h.session({ nThreads: -1 }), (e) => e.code === 'RMKV_ERR_INVALID_ARGUMENT' && e.message.includes('n_threads'));
  for (const x of [m, h, w]) x.close();
});

test('stepTogether: the rows of stepping each session alone', () => {
  const m = rmkv.Model.create(CONFIG, tok, 7);
  const toks = Array.from(tok.encode(TEXTS[0])).slice(0, 12);
  const a = m.session(), b = m.session(), a1 = m.session(), b1 = m.session();
  a.step(toks.slice(0, 3), { logits: false });
  a1.step(toks.slice(0, 3), { logits: false });
  for (const t of toks.slice(3)) {
    const rows = rmkv.stepTogether([a, b], [t, toks[0]]);
    assert.strictEqual(rows.length, 2);
    const r0 = a1.step(t), r1 = b1.step(toks[0]);
    for (let i = 0; i < r0.length; i++) {
      assert.ok(Math.abs(rows[0][i] - r0[i]) < 1e-4);
      assert.ok(Math.abs(rows[1][i] - r1[i]) < 1e-4);
    }
  }
  assert.strictEqual(rmkv.stepTogether([a], [toks[1]], { logits: false }), null);
  assert.strictEqual(a.position, 13);
  assert.throws(() => rmkv.stepTogether([a, a], [1, 2]), /twice/);
  assert.strictEqual(a.position, 13);
  m.close();
});

test('session: step forms, flush, reset, clone, sample', () => {
  const m = rmkv.Model.create(CONFIG, tok, 7);
  const toks = Array.from(tok.encode(TEXTS[1])).slice(0, 20);
  const a = m.session(), b = m.session(), c = m.session();
  for (const t of toks.slice(0, -1)) assert.strictEqual(a.step(t, { logits: false }), null);
  const la = a.step(toks[toks.length - 1]);
  assert.ok(la instanceof Float32Array && la.length === m.vocabSize);
  assert.strictEqual(a.logits, la);
  const lb = b.step(toks);
  const rows = c.stepAll(toks);
  assert.strictEqual(rows.length, toks.length);
  for (let i = 0; i < lb.length; i++) {
    assert.ok(Math.abs(la[i] - lb[i]) < 1e-5);
    assert.ok(Math.abs(rows[rows.length - 1][i] - lb[i]) < 1e-5);
  }
  assert.strictEqual(a.position, 20);
  assert.strictEqual(a.segmentFill, 20 % 8);
  a.flush();
  assert.strictEqual(a.segmentFill, 0);
  const k = a.clone();
  assert.deepStrictEqual(a.step(5).slice(), k.step(5).slice());
  k.step([1, 2]);
  assert.strictEqual(k.position, 23);
  assert.strictEqual(a.position, 21);
  let best = 0;
  for (let i = 1; i < a.logits.length; i++) if (a.logits[i] > a.logits[best]) best = i;
  assert.strictEqual(a.sample({ temperature: 0 }), best);
  const d1 = k.clone(), d2 = k.clone();
  assert.strictEqual(d1.sample({ temperature: 1, topP: 1, seed: 5 }), d2.sample({ temperature: 1, topP: 1, seed: 5 }));
  assert.throws(() => a.sample({ temprature: 0 }), TypeError);
  assert.throws(() => a.sample({ temperature: -1 }), (e) => e.code === 'RMKV_ERR_INVALID_ARGUMENT');
  const before = a.saveState();
  assert.throws(() => a.step([1, m.vocabSize]), (e) => e.code === 'RMKV_ERR_INVALID_ARGUMENT' &&
    e.message.includes(String(m.vocabSize)));
  assert.throws(() => a.step([]), rmkv.RmkvError);
  assert.deepStrictEqual(a.saveState(), before);
  a.reset();
  assert.strictEqual(a.position, 0);
  assert.throws(() => a.sample({ temperature: 0 }), rmkv.RmkvError);
  m.close();  // closes its sessions
  assert.ok(a.closed && b.closed && k.closed && d1.closed);
  assert.throws(() => a.step(1), /closed/);
});

test('session: state bytes and files, mismatch, corrupt', () => {
  const m = rmkv.Model.create(CONFIG, tok, 7);
  const toks = Array.from(tok.encode(TEXTS[1]));
  const a = m.session(), b = m.session();
  a.step(toks.slice(0, 11));
  const st = a.saveState();
  assert.ok(Buffer.isBuffer(st) && st.length === a.stateSize);
  b.loadState(new Uint8Array(st));
  assert.deepStrictEqual(a.step(toks[11]).slice(), b.step(toks[11]).slice());
  a.saveStateFile(path.join(tmp, 's.state'));
  const c = m.session();
  c.loadStateFile(path.join(tmp, 's.state'));
  assert.strictEqual(c.position, a.position);
  assert.throws(() => b.loadState(st.subarray(0, st.length >> 1)), (e) => e.code === 'RMKV_ERR_FORMAT');
  assert.throws(() => b.loadStateFile(path.join(tmp, 'none.state')), (e) => e.code === 'RMKV_ERR_IO');
  const other = rmkv.Model.create({ ...CONFIG, memory_slots: 2 }, tok, 7);
  assert.throws(() => other.session().loadState(st), (e) => e.code === 'RMKV_ERR_MISMATCH' && e.rmkvMessage.length > 0);
  other.close();
  m.close();
});

test('session: save in one process, restore in another', () => {
  const m = rmkv.Model.create(CONFIG, tok, 7);
  const file = path.join(tmp, 'xp.safetensors');
  m.save(file);
  const toks = Array.from(tok.encode(TEXTS[0] + TEXTS[1]));
  const first = toks.slice(0, 13), rest = toks.slice(13, 20);
  const s = m.session();
  s.step(first);
  const expected = Buffer.from(s.step(rest).buffer).toString('hex');
  m.close();
  const child = `
    const rmkv = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const fs = require('fs');
    const [file, mode, toks, st] = process.argv.slice(1);
    const s = rmkv.Model.load(file).session();
    const t = toks.split(',').map(Number);
    if (mode === 'save') { s.step(t); fs.writeFileSync(st, s.saveState()); }
    else { s.loadState(fs.readFileSync(st)); process.stdout.write(Buffer.from(s.step(t).buffer).toString('hex')); }`;
  const stFile = path.join(tmp, 'game.sav');
  const run = (...args) => {
    const r = spawnSync(process.execPath, ['-e', child, file, ...args], { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    return r.stdout;
  };
  run('save', first.join(','), stFile);
  assert.strictEqual(run('load', rest.join(','), stFile), expected);
});

test.after(() => {
  tok.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
