'use strict';
// The Node side of same_output.py: node same_output.js BINDING_DIR MODEL PROMPT N_GEN LOGITS_OUT
const fs = require('fs');
const [dir, model, prompt, nGen, out] = process.argv.slice(2);
const rmkv = require(dir);
const m = rmkv.Model.load(model);
const tok = m.tokenizer;
const s = m.session();
const n = Number(nGen);
const V = m.vocabSize;
const all = new Float32Array(V * (n + 1));
all.set(s.step(tok.encode(prompt)), 0);
const gen = [];
for (let i = 0; i < n; i++) {
  const t = s.sample({ temperature: 0 });
  gen.push(t);
  all.set(s.step(t), (i + 1) * V);
}
fs.writeFileSync(out, Buffer.from(all.buffer));
const streamed = m.session().generate(prompt, { maxTokens: n, temperature: 0 }).text;
process.stdout.write(tok.decode(gen) + '\0' + streamed);
m.close();
