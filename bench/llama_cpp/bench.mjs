// rmkv against llama.cpp on the CPU, side by side, through the same harness:
// rmkv through its Node binding (bindings/node), llama.cpp through node-llama-cpp
// (its prebuilt CPU library, which picks the kernels for this CPU at run time),
// both with the same thread count and the same token ids.
//
// For each weight format, a model of rmkv's `small` shape (or --config) in both
// engines: rmkv's own file (`rmkv create`, `rmkv convert`), and a llama-architecture
// GGUF of the same d_model, layers, heads, SwiGLU width, vocabulary and untied head
// (make_gguf.py). The two run in turn, one child process each, --rounds times;
// the table gives the medians and the ratios of the medians.
//
// Each run: a prompt of --prompt tokens in one call (prefill, logits of the last
// token, greedy pick), --decode tokens one at a time (each: logits, greedy pick,
// fed back), half a segment more in one call (untimed: rmkv's segment cache then
// holds S/2 tokens, its average), then the session's state saved to a file and
// loaded into another session. --long: the same state figures at that length.
//
//   node bench/llama_cpp/bench.mjs [--rounds 5] [--prompt 512] [--decode 256]
//        [--threads 2] [--formats f32,bf16,f16,q8_0] [--sessions 8] [--long 4096]
//        [--config JSON] [--work DIR] [--build DIR]
// Needs: build/ (tools/rmkv and src/librmkv.so.0, or --build DIR), the npm
// packages of bench/llama_cpp (`npm ci --ignore-scripts` there: the prebuilt
// binaries are enough) and of bindings/node, numpy.
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {createRequire} from 'node:module';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

function args(argv) {
  const a = {rounds: 5, prompt: 512, decode: 256, threads: 2, formats: 'f32,bf16,f16,q8_0', work: '',
             build: path.join(root, 'build'), config: '', vocab: 0, extra: 0, long: 4096, sessions: 8, together: 0};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a) && !['child', 'engine', 'model'].includes(k)) throw new Error(`unknown option ${argv[i]}`);
    a[k] = argv[++i];
  }
  for (const k of ['rounds', 'prompt', 'decode', 'threads', 'vocab', 'extra', 'long', 'sessions', 'together']) a[k] = Number(a[k]);
  return a;
}

function argmax(v) {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

// Greedy, and on through end-of-generation tokens (the model's weights are random):
// every step of a llama.cpp generator must produce a token, or a timing would
// count steps that did nothing.
const evalOptions = {temperature: 0, yieldEogToken: true};
function alive(r) {
  if (r.done) throw new Error('llama.cpp: the generator ended before the steps asked of it');
}

const promptTokens = (n, vocab) => Array.from({length: n}, (_, i) => 256 + (i * 7919) % (vocab - 256));
const ms = (t0) => performance.now() - t0;

// --together N: N sessions (64 prompt tokens each, untimed), then --decode steps
// in which each session takes one token, all computed together (rmkv:
// stepTogether; llama.cpp: one sequence each in one context, whose pending
// evaluations node-llama-cpp gathers into one batch). Prints tokens/s in all.
async function together(a) {
  const n = a.together, steps = a.decode;
  const prompts = Array.from({length: n}, (_, k) => promptTokens(64, a.vocab).map((t) => 256 + (t + 97 * k) % (a.vocab - 256)));
  let seconds;
  if (a.engine === 'rmkv') {
    const require = createRequire(import.meta.url);
    const rmkv = require(path.join(root, 'bindings/node'));
    const model = rmkv.Model.load(a.model);
    const ss = prompts.map((p) => { const s = model.session(); s.step(p); return s; });
    let toks = ss.map((s) => argmax(s.logits));
    const pick = (all) => toks.map((_, k) => argmax(all[k]));
    toks = pick(rmkv.stepTogether(ss, toks));  // warm-up
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) toks = pick(rmkv.stepTogether(ss, toks));
    seconds = ms(t0) / 1000;
  } else {
    const {getLlama} = await import(path.join(here, 'node_modules/node-llama-cpp/dist/index.js'));
    const llama = await getLlama({gpu: false, build: 'never', logLevel: 'error'});
    const model = await llama.loadModel({modelPath: a.model});
    // contextSize is per sequence in node-llama-cpp.
    const ctx = await model.createContext({contextSize: 64 + steps + 16, batchSize: Math.max(n, 64),
                                           threads: a.threads, sequences: n});
    const its = prompts.map((p) => ctx.getSequence().evaluate(p, evalOptions));
    for (const it of its) alive(await it.next());  // prompts, one sequence after another
    (await Promise.all(its.map((it) => it.next()))).forEach(alive);  // warm-up
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) (await Promise.all(its.map((it) => it.next()))).forEach(alive);
    seconds = ms(t0) / 1000;
  }
  console.log(JSON.stringify({engine: a.engine, tokens_per_s: n * steps / seconds}));
}

// One engine, one model file: prints a JSON line.
async function child(a) {
  if (a.together > 0) return together(a);
  const out = {engine: a.engine};
  const stateFile = path.join(a.work, `state-${a.engine}-${process.pid}`);
  if (a.engine === 'rmkv') {
    const require = createRequire(import.meta.url);
    const rmkv = require(path.join(root, 'bindings/node'));
    const model = rmkv.Model.load(a.model);
    const s = model.session();
    const prompt = promptTokens(a.prompt, a.vocab);
    s.step(prompt);  // warm-up: first-call setup (kernels for these shapes) off the clock
    s.reset();
    let t0 = performance.now();
    let tok = argmax(s.step(prompt));
    out.prefill_ms = ms(t0);
    t0 = performance.now();
    for (let i = 0; i < a.decode; i++) tok = argmax(s.step([tok]));
    out.decode_ms = ms(t0) / a.decode;
    s.step(promptTokens(a.extra, a.vocab), {logits: false});
    t0 = performance.now();
    const bytes = s.saveState();
    out.mem_save_ms = ms(t0);
    const s3 = model.session();  // sessions are created before their loads are timed, as for llama.cpp
    t0 = performance.now();
    s3.loadState(bytes);
    out.mem_load_ms = ms(t0);
    t0 = performance.now();
    s.saveStateFile(stateFile);
    out.save_ms = ms(t0);
    out.state_bytes = fs.statSync(stateFile).size;
    const s2 = model.session();
    s2.step([1]);  // a session in use, as llama.cpp's second sequence of a context in use
    t0 = performance.now();
    s2.loadStateFile(stateFile);
    out.load_ms = ms(t0);
    const next = argmax(s2.step([tok]));
    out.continues = next === argmax(s.step([tok]));
    s.flush();  // the memories alone: what a session that ends its turn with a flush keeps
    t0 = performance.now();
    out.flushed_bytes = s.saveState().length;
    out.flushed_save_ms = ms(t0);
  } else {
    const {getLlama} = await import(path.join(here, 'node_modules/node-llama-cpp/dist/index.js'));
    const llama = await getLlama({gpu: false, build: 'never', logLevel: 'error'});
    const model = await llama.loadModel({modelPath: a.model});
    const ctx = await model.createContext({contextSize: a.prompt + a.decode + a.extra + 64, batchSize: a.prompt,
                                           threads: a.threads, sequences: 2});
    const seq = ctx.getSequence();
    const prompt = promptTokens(a.prompt, a.vocab);
    {  // warm-up, as for rmkv
      const w = seq.evaluate(prompt, evalOptions);
      alive(await w.next());
      await w.return();
      await seq.clearHistory();
    }
    let t0 = performance.now();
    const it = seq.evaluate(prompt, evalOptions);
    alive(await it.next());
    out.prefill_ms = ms(t0);
    t0 = performance.now();
    for (let i = 0; i < a.decode; i++) alive(await it.next());
    out.decode_ms = ms(t0) / a.decode;
    await it.return();
    await seq.evaluateWithoutGeneratingNewTokens(promptTokens(a.extra, a.vocab));
    t0 = performance.now();
    await seq.saveStateToFile(stateFile);
    out.save_ms = ms(t0);
    out.state_bytes = fs.statSync(stateFile).size;
    const seq2 = ctx.getSequence();
    t0 = performance.now();
    await seq2.loadStateFromFile(stateFile, {acceptRisk: true});
    out.load_ms = ms(t0);
    out.continues = true;  // llama.cpp's own state; not checked here
  }
  out.rss_mb = process.memoryUsage().rss / 1048576;
  fs.rmSync(stateFile, {force: true});
  console.log(JSON.stringify(out));
}

function run(cmd, argv, env) {
  const r = spawnSync(cmd, argv, {encoding: 'utf8', env: {...process.env, ...env}, maxBuffer: 1 << 26});
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const median = (xs) => {
  const v = [...xs].sort((p, q) => p - q);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

async function main() {
  const a = args(process.argv.slice(2));
  if (a.child) return child(a);
  const ownWork = !a.work;
  a.work = a.work || fs.mkdtempSync(path.join(os.tmpdir(), 'rmkv-vs-llama-'));
  const rmkvTool = path.join(a.build, 'tools/rmkv');
  const config = a.config ||
      '{"vocab_size":16384,"d_model":512,"n_layers":8,"n_heads":8,"memory_slots":32,"segment_len":256}';
  const f32 = path.join(a.work, 'rmkv-f32.safetensors');
  run(rmkvTool, ['create', config, f32, '--seed', '1']);
  const full = run(rmkvTool, ['info', f32]).match(/^config: *(.*)$/m)[1];
  const formats = a.formats.split(',');
  // The state is saved half a segment past the decoded tokens: rmkv's segment cache
  // then holds S/2 tokens, its average over a segment cycle.
  const extra = Math.floor(JSON.parse(full).segment_len / 2);
  const rows = [];
  for (const f of formats) {
    let rmkvFile = null;
    if (f === 'f32') rmkvFile = f32;
    else if (f === 'bf16' || f === 'f16') {
      rmkvFile = path.join(a.work, `rmkv-${f}.safetensors`);
      run(rmkvTool, ['convert', f32, rmkvFile, '--dtype', f]);
    }
    const gguf = path.join(a.work, `llama-${f}.gguf`);
    run('/usr/bin/python3', [path.join(here, 'make_gguf.py'), '--config', full, '--dtype', f, '--out', gguf,
                             '--context', String(Math.max(a.prompt + a.decode, a.long) + extra + 64)]);
    rows.push({format: f, rmkvFile, gguf, runs: {}});
  }
  // rmkv with --threads; llama.cpp with --threads and with 1 (on a machine of few
  // cores its decode can be faster on one thread: each ratio below is taken
  // against llama.cpp's better figure).
  const variants = [{name: 'rmkv', engine: 'rmkv', threads: a.threads}, {name: `llama t${a.threads}`, engine: 'llama', threads: a.threads}];
  if (a.threads > 1) variants.push({name: 'llama t1', engine: 'llama', threads: 1});
  const vocab = String(JSON.parse(full).vocab_size);
  const common = ['--work', a.work, '--prompt', String(a.prompt), '--decode', String(a.decode), '--vocab', vocab,
                  '--extra', String(extra)];
  const self = fileURLToPath(import.meta.url);
  const env = (v) => ({OMP_NUM_THREADS: String(v.threads), RMKV_LIBRARY: path.join(a.build, 'src/librmkv.so.0')});
  const childRun = (v, file, more) => JSON.parse(run(process.execPath, [self, '--child', '1', '--engine', v.engine, '--model', file,
                                                                       '--threads', String(v.threads), ...more], env(v))
                                                     .trim().split('\n').pop());
  for (let round = 0; round < a.rounds; round++)
    for (const row of rows)
      for (const v of variants) {
        const file = v.engine === 'rmkv' ? row.rmkvFile : row.gguf;
        if (!file) continue;
        const r = childRun(v, file, common);
        if (!r.continues) throw new Error('rmkv: a restored session did not continue as the saved one');
        if (a.sessions > 1) r.together_tok_s = childRun(v, file, [...common, '--together', String(a.sessions)]).tokens_per_s;
        (row.runs[v.name] ??= []).push(r);
      }

  console.log(`${run(rmkvTool, ['version']).trim()} against llama.cpp (node-llama-cpp ${
      JSON.parse(fs.readFileSync(path.join(here, 'node_modules/node-llama-cpp/package.json'))).version}), CPU, ${
      os.cpus()[0].model}, ${os.cpus().length} cores`);
  console.log(`model: ${full}`);
  console.log(`prompt ${a.prompt} tokens, then ${a.decode} decoded one at a time; state saved to a file and loaded at ${
      a.prompt + a.decode + extra} tokens; medians of ${a.rounds} rounds\n`);
  const head = ['weights', 'engine', 'prefill tok/s', 'decode ms/tok', `${a.sessions} sess tok/s`, 'state KiB', 'save ms',
                'load ms', 'RSS MiB'];
  console.log(head.map((h, i) => i < 2 ? h.padEnd(i ? 10 : 8) : h.padStart(14)).join(''));
  const cell = (rs, k) => median(rs.map((r) => r[k]));
  for (const row of rows)
    for (const v of variants) {
      const rs = row.runs[v.name];
      if (!rs) continue;
      const vals = [a.prompt / cell(rs, 'prefill_ms') * 1000, cell(rs, 'decode_ms'),
                    a.sessions > 1 ? cell(rs, 'together_tok_s') : NaN, cell(rs, 'state_bytes') / 1024,
                    cell(rs, 'save_ms'), cell(rs, 'load_ms'), cell(rs, 'rss_mb')];
      const digits = [0, 3, 0, 0, 2, 2, 0];
      console.log(row.format.padEnd(8) + v.name.padEnd(10) + vals.map((x, i) => x.toFixed(digits[i]).padStart(14)).join(''));
    }
  // The state of a longer conversation (--long tokens, plus half a segment), once,
  // with the first format's files.
  const longRow = rows.find((r) => r.rmkvFile);
  const longAt = a.long + extra;
  if (a.long > a.prompt && longRow) {
    const longArgs = ['--work', a.work, '--prompt', String(a.prompt), '--decode', '1', '--vocab', vocab,
                      '--extra', String(longAt - a.prompt - 1)];
    const rm = childRun(variants[0], longRow.rmkvFile, longArgs), ll = childRun(variants[1], longRow.gguf, longArgs);
    if (!rm.continues) throw new Error('rmkv: a restored session did not continue as the saved one');
    console.log(`\nstate at ${longAt} tokens (${longRow.format} files): rmkv ${(rm.state_bytes / 1024).toFixed(0)} KiB, ` +
                `llama.cpp ${(ll.state_bytes / 1024).toFixed(0)} KiB (${(ll.state_bytes / rm.state_bytes).toFixed(1)}x); ` +
                `save to a file ${rm.save_ms.toFixed(2)} / ${ll.save_ms.toFixed(2)} ms, load ${rm.load_ms.toFixed(2)} / ${
                    ll.load_ms.toFixed(2)} ms`);
  }
  console.log('\nrmkv state in memory (rmkv_session_state_save/_load; its file writes are fsynced, llama.cpp\'s are not):');
  for (const row of rows) {
    const rs = row.runs.rmkv;
    if (rs)
      console.log(`  ${row.format.padEnd(5)} save ${cell(rs, 'mem_save_ms').toFixed(2)} ms, load ${
          cell(rs, 'mem_load_ms').toFixed(2)} ms; after a flush ${(cell(rs, 'flushed_bytes') / 1024).toFixed(0)} KiB, saved in ${
          cell(rs, 'flushed_save_ms').toFixed(2)} ms`);
  }
  console.log('\nrmkv against llama.cpp\'s better thread count, same weight format (above 1: rmkv faster or smaller):');
  for (const row of rows) {
    const rm = row.runs.rmkv, lls = variants.slice(1).map((v) => row.runs[v.name]).filter(Boolean);
    if (!rm || !lls.length) continue;
    const lowest = (k) => Math.min(...lls.map((rs) => cell(rs, k))), highest = (k) => Math.max(...lls.map((rs) => cell(rs, k)));
    const r = (k) => lowest(k) / cell(rm, k);
    const tog = a.sessions > 1 ? `, ${a.sessions} sessions ${(cell(rm, 'together_tok_s') / highest('together_tok_s')).toFixed(2)}x` : '';
    console.log(`  ${row.format.padEnd(5)} prefill ${r('prefill_ms').toFixed(2)}x, decode ${r('decode_ms').toFixed(2)}x${tog}, ` +
                `state size ${r('state_bytes').toFixed(1)}x, save ${r('save_ms').toFixed(1)}x, load ${r('load_ms').toFixed(1)}x`);
  }
  if (ownWork) fs.rmSync(a.work, {recursive: true, force: true});
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
