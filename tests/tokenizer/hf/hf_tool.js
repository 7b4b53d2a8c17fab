#!/usr/bin/env node
// Hugging Face tokenizers (the npm package `tokenizers`) as the oracle of rmkv's
// tokenizer tests and benchmark.
//
//   node hf_tool.js train OUT.json [--digits 0|1] [--prefix 0|1] [--normalizer NFD|none] [--specials a,b] FILE...
//        trains a byte-level BPE with Tokenizer.train(files) (Hugging Face's default
//        BpeTrainer: vocabulary 30000, min_frequency 0, no initial alphabet), then
//        adds the special tokens, and saves tokenizer.json
//   node hf_tool.js encode TOKENIZER.json TEXT_FILE OUT_IDS OUT_DECODED
//        the ids of the file's text (space-separated) and their decoding
//   node hf_tool.js compare-models A.json B.json
//        exit 0 when both models have the same vocabulary and merges, else
//        prints the first difference and exits 1
//   node hf_tool.js variants BASE.json OUTDIR
//        writes variants of a tokenizer.json (normalizers, pre-tokenizers, added
//        token flags, unk) to OUTDIR/variant_*.json and lists them
//   node hf_tool.js encode-lines TOKENIZER.json TEXT_FILE OUT.txt
//        one line of space-separated ids per line of the file (line without its "\n")
//   node hf_tool.js bench-encode TOKENIZER.json TEXT_FILE
//        encoding throughput, encodeBatch over the file's 100-line blocks
'use strict';
const fs = require('fs');
const path = require('path');

let tk;
try {
  tk = require(path.join(__dirname, 'node_modules', 'tokenizers'));
} catch (e) {
  process.stderr.write(
    `hf_tool.js: cannot load the npm package "tokenizers" from ${path.join(__dirname, 'node_modules')}:\n` +
      `  ${e.message}\n  run \`npm ci\` in ${__dirname} first\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { digits: true, prefix: false, normalizer: 'NFD', specials: [] };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--digits') opts.digits = argv[++i] === '1';
    else if (a === '--prefix') opts.prefix = argv[++i] === '1';
    else if (a === '--normalizer') opts.normalizer = argv[++i];
    else if (a === '--specials') opts.specials = argv[++i].split(',').filter((s) => s.length > 0);
    else rest.push(a);
  }
  return { opts, rest };
}

function emptyTokenizerJson(opts) {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: opts.prefix, trim_offsets: true, use_regex: true };
  const pre = opts.digits
    ? { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] }
    : byteLevel;
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: opts.normalizer === 'none' ? null : { type: opts.normalizer },
    pre_tokenizer: pre,
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: {},
      merges: [],
    },
  });
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'train') {
    const { opts, rest } = parseArgs(args);
    const [out, ...files] = rest;
    const tokenizer = tk.Tokenizer.fromString(emptyTokenizerJson(opts));
    const t0 = process.hrtime.bigint();
    tokenizer.train(files);
    const t1 = process.hrtime.bigint();
    if (opts.specials.length) tokenizer.addSpecialTokens(opts.specials);
    tokenizer.save(out, false);
    process.stdout.write(
      JSON.stringify({
        train_seconds: Number(t1 - t0) / 1e9,
        vocab_size: tokenizer.getVocabSize(true),
        peak_rss_kb: process.resourceUsage().maxRSS,
      }) + '\n',
    );
  } else if (cmd === 'encode') {
    const [tokFile, textFile, outIds, outDecoded] = args;
    const tokenizer = tk.Tokenizer.fromFile(tokFile);
    const text = fs.readFileSync(textFile, 'utf8');
    const enc = await tokenizer.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    const decoded = await tokenizer.decode(ids, false);
    fs.writeFileSync(outIds, ids.join(' ') + '\n');
    fs.writeFileSync(outDecoded, decoded);
  } else if (cmd === 'compare-models') {
    const [a, b] = args.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')).model);
    const norm = (m) => m.merges.map((x) => (Array.isArray(x) ? x : x.split(' ')).join(' '));
    const va = Object.entries(a.vocab).sort((x, y) => x[1] - y[1]);
    const vb = Object.entries(b.vocab).sort((x, y) => x[1] - y[1]);
    const ma = norm(a), mb = norm(b);
    for (let i = 0; i < Math.max(va.length, vb.length); i++) {
      if (!va[i] || !vb[i] || va[i][0] !== vb[i][0] || va[i][1] !== vb[i][1]) {
        process.stdout.write(`vocab differs at entry ${i}: ${JSON.stringify(va[i])} vs ${JSON.stringify(vb[i])}\n`);
        process.exit(1);
      }
    }
    for (let i = 0; i < Math.max(ma.length, mb.length); i++) {
      if (ma[i] !== mb[i]) {
        process.stdout.write(`merge ${i} differs: ${JSON.stringify(ma[i])} vs ${JSON.stringify(mb[i])}\n`);
        process.exit(1);
      }
    }
    process.stdout.write(`same vocabulary (${va.length}) and merges (${ma.length})\n`);
  } else if (cmd === 'variants') {
    const [base, outDir] = args;
    const j = JSON.parse(fs.readFileSync(base, 'utf8'));
    const bl = (prefix, regex) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: true, use_regex: regex });
    const digits = (ind) => ({ type: 'Digits', individual_digits: ind });
    const seq = (...p) => ({ type: 'Sequence', pretokenizers: p });
    const nseq = (...n) => ({ type: 'Sequence', normalizers: n.map((t) => ({ type: t })) });
    const added = (content, flags) => Object.assign({ id: 0, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, flags);
    const specials = j.added_tokens;
    const variants = {
      nfc_prefix: { normalizer: { type: 'NFC' }, pre_tokenizer: seq(digits(true), bl(true, true)) },
      nfkc_lower: { normalizer: nseq('NFKC', 'Lowercase'), pre_tokenizer: seq(digits(false), bl(false, true)) },
      nfkd_bytelevel_first: { normalizer: { type: 'NFKD' }, pre_tokenizer: seq(bl(false, true), digits(true)) },
      no_regex: { normalizer: null, pre_tokenizer: bl(false, false) },
      plain_bytelevel: { normalizer: null, pre_tokenizer: bl(true, true) },
      // the most ByteLevel steps rmkv runs (each maps the previous one's characters again)
      four_bytelevel: { normalizer: null, pre_tokenizer: seq(bl(true, true), bl(false, true), digits(true), bl(true, false), bl(false, true)) },
      added_flags: {
        added_tokens: specials.concat([
          added('<tool>', { special: true, lstrip: true, rstrip: true }),
          added('quick', { single_word: true, normalized: true }),
          added('Crème', { normalized: true }),
          added('the', { single_word: false, normalized: true, rstrip: true }),
          added('  ', { normalized: false }),
        ]),
      },
      unk_fused: { model: Object.assign({}, j.model, { unk_token: '<unk>', fuse_unk: true }) },
      unk: { model: Object.assign({}, j.model, { unk_token: '<unk>', fuse_unk: false }) },
      ignore_merges: { model: Object.assign({}, j.model, { ignore_merges: true }) },
      no_decoder: { decoder: null },
    };
    for (const [name, change] of Object.entries(variants)) {
      const v = Object.assign({}, j, change);
      if (name === 'unk_fused' || name === 'unk') {
        // <unk> must be in the model's vocabulary
        const vocab = Object.assign({}, v.model.vocab);
        if (!('<unk>' in vocab)) vocab['<unk>'] = Math.max(...Object.values(vocab)) + 1;
        v.model = Object.assign({}, v.model, { vocab });
        v.added_tokens = [];
      }
      const file = path.join(outDir, `variant_${name}.json`);
      fs.writeFileSync(file, JSON.stringify(v));
      tk.Tokenizer.fromFile(file); // HF must accept it
      process.stdout.write(file + '\n');
    }
  } else if (cmd === 'encode-lines') {
    const [tokFile, textFile, out] = args;
    const tokenizer = tk.Tokenizer.fromFile(tokFile);
    const lines = fs.readFileSync(textFile, 'utf8').split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    const encs = await tokenizer.encodeBatch(lines, { addSpecialTokens: false });
    fs.writeFileSync(out, encs.map((e) => e.getIds().join(' ')).join('\n') + '\n');
  } else if (cmd === 'bench-encode') {
    const [tokFile, textFile] = args;
    const tokenizer = tk.Tokenizer.fromFile(tokFile);
    const text = fs.readFileSync(textFile, 'utf8');
    // documents of 100 lines, as bench_tokenizer.cpp cuts them
    const docs = [];
    let start = 0, lines = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) {
      if (++lines === 100) {
        docs.push(text.slice(start, i + 1));
        start = i + 1;
        lines = 0;
      }
    }
    if (start < text.length) docs.push(text.slice(start));
    const bytes = Buffer.byteLength(text, 'utf8');
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (let i = 0; i < docs.length; i += 256) {
      const encs = await tokenizer.encodeBatch(docs.slice(i, i + 256), { addSpecialTokens: false });
      for (const e of encs) n += e.getLength();
    }
    const t1 = process.hrtime.bigint();
    const s = Number(t1 - t0) / 1e9;
    process.stdout.write(
      JSON.stringify({ seconds: s, mb_per_s: bytes / 1e6 / s, tokens: n, peak_rss_kb: process.resourceUsage().maxRSS }) + '\n',
    );
  } else {
    process.stderr.write('usage: hf_tool.js train|encode|encode-lines|bench-encode ...\n');
    process.exit(2);
  }
}

main().catch((e) => {
  process.stderr.write(`hf_tool.js: ${e.stack || e}\n`);
  process.exit(1);
});
