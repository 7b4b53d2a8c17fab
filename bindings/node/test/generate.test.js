'use strict';
const test = require('node:test');
const assert = require('node:assert');
const rmkv = require('..');

const TEXT = 'The old lighthouse keeper wrote in his log every night. The sea was calm, the lamp was bright, ' +
  'and the ships passed safely.\n';
const PROMPT = 'The old lighthouse keeper';
const tok = rmkv.Tokenizer.trainFromTexts([TEXT.repeat(20)], { vocabSize: 300 });
const model = rmkv.Model.create({ d_model: 32, n_layers: 2, n_heads: 2, memory_slots: 4, segment_len: 8 }, tok, 3);

function manualGreedy(n) {
  const s = model.session();
  const ts = tok.stream();
  s.step(tok.encode(PROMPT));
  const ids = [];
  let text = '';
  for (let i = 0; i < n; i++) {
    const t = s.sample({ temperature: 0 });
    ids.push(t);
    text += ts.feed(t);
    s.step(t);
  }
  text += ts.flush();
  s.close();
  ts.close();
  return { ids, text };
}

test('generate streams the greedy text', () => {
  const { ids, text } = manualGreedy(30);
  const s = model.session();
  const pieces = [];
  const r = s.generate(PROMPT, { maxTokens: 30, temperature: 0, onPiece: (p) => { pieces.push(p); } });
  assert.strictEqual(pieces.join(''), text);
  assert.deepStrictEqual(r, { text, stopReason: 'limit', nTokens: 30, stopIndex: -1 });
  assert.strictEqual(s.position, tok.encode(PROMPT).length + 30);
  const s2 = model.session();
  assert.strictEqual(s2.generate(tok.encode(PROMPT), { maxTokens: 10, temperature: 0 }).text, tok.decode(ids.slice(0, 10)));
  assert.strictEqual(s2.generate(null, { maxTokens: 20, temperature: 0 }).text, tok.decode(ids.slice(10, 30)));
});

test('stop tokens, stop strings, cancel', () => {
  const { ids, text } = manualGreedy(30);
  const stop = ids[5];
  let r = model.session().generate(PROMPT, { maxTokens: 30, temperature: 0, stopTokens: [1000, stop] });
  assert.strictEqual(r.stopReason, 'token');
  assert.strictEqual(r.stopIndex, 1);
  assert.strictEqual(r.text, tok.decode(ids.slice(0, ids.indexOf(stop))));
  const sub = text.slice(10, 16);
  r = model.session().generate(PROMPT, { maxTokens: 30, temperature: 0, stopStrings: ['zzzz', sub] });
  assert.strictEqual(r.stopReason, 'string');
  assert.strictEqual(r.text, text.slice(0, text.indexOf(sub)));
  let n = 0;
  r = model.session().generate(PROMPT, { maxTokens: 100000, temperature: 1, seed: 1, onPiece: () => ++n >= 3 });
  assert.strictEqual(r.stopReason, 'cancelled');
  assert.ok(r.nTokens < 100000);
  assert.throws(() => model.session().generate(PROMPT, { maxTokens: 100, onPiece: () => { throw new Error('boom'); } }),
    /boom/);
});

test('chat turn, errors, bias and bans', () => {
  const s = model.session();
  const r = s.generate('Hello keeper', { chat: true, maxTokens: 8, temperature: 0 });
  assert.ok(r.stopReason === 'limit' || r.stopReason === 'token');
  assert.strictEqual(s.segmentFill, 0);
  const e = model.session();
  assert.throws(() => e.generate([1, model.vocabSize + 3], { maxTokens: 4 }),
    (err) => err.code === 'RMKV_ERR_INVALID_ARGUMENT' && err.message.includes(String(model.vocabSize + 3)));
  assert.strictEqual(e.position, 0);
  assert.throws(() => e.generate(null, { maxTokens: 4 }), (err) => err.code === 'RMKV_ERR_INVALID_ARGUMENT');
  assert.throws(() => e.generate(PROMPT, { temprature: 0 }), TypeError);
  const l = e.step(tok.encode(PROMPT));
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
  assert.strictEqual(e.sample({ temperature: 0 }), best);
  assert.notStrictEqual(e.sample({ temperature: 0, bannedTokens: [best] }), best);
  assert.strictEqual(e.sample({ temperature: 0, logitBias: { 7: 1e4 } }), 7);
  assert.notStrictEqual(e.sample({ temperature: 0, logitBias: { [best]: -Infinity } }), best);
});

test.after(() => { model.close(); tok.close(); });
