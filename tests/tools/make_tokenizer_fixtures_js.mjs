// make_tokenizer_fixtures_js.mjs - PROVISIONAL tokenizer fixtures from the JavaScript port
// (@huggingface/transformers AutoTokenizer), same format as make_tokenizer_fixtures.py.
// The authoritative fixtures come from Python transformers; these only let the tests
// run until those exist. Install the oracle outside the repo, then run:
//   (cd /tmp/tjs && npm init -y && npm install --ignore-scripts @huggingface/transformers@3)
//   TRANSFORMERS_JS=/tmp/tjs node tests/tools/make_tokenizer_fixtures_js.mjs \
//       tests/fixtures/tokenizer/corpus.jsonl tests/fixtures/tokenizer/js \
//       tests/fixtures/tokenizers/npm/llama2 tests/fixtures/tokenizers/npm/llama3 ...
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const prefix = process.env.TRANSFORMERS_JS || '/tmp/npmwork';
const require = createRequire(path.join(prefix, 'package.json'));
const tjs = require('@huggingface/transformers');
const pkg = JSON.parse(fs.readFileSync(path.join(prefix, 'node_modules/@huggingface/transformers/package.json'), 'utf8'));
const { AutoTokenizer, env } = tjs;
env.allowRemoteModels = false;
env.allowLocalModels = true;

const [corpusPath, outDir, ...dirs] = process.argv.slice(2);
if (!corpusPath || !outDir || dirs.length === 0) {
    console.error('usage: node make_tokenizer_fixtures_js.mjs CORPUS OUTDIR TOKDIR...');
    process.exit(2);
}
const entries = fs.readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l));
fs.mkdirSync(outDir, { recursive: true });
const utf8 = new TextDecoder('utf-8', { fatal: false }); // errors='replace'

for (const d of dirs) {
    const name = path.basename(path.resolve(d));
    env.localModelPath = path.dirname(path.resolve(d)) + '/';
    const tok = await AutoTokenizer.from_pretrained(name);
    const lines = [JSON.stringify({ header: true, tokenizer: name, class: tok.constructor.name,
        generator: 'transformers.js', 'transformers.js': pkg.version, node: process.version })];
    for (const e of entries) {
        const text = utf8.decode(Buffer.from(e.b64, 'base64'));
        const ids = Array.from(tok(text).input_ids.data, Number);
        const idsNs = Array.from(tok(text, { add_special_tokens: false }).input_ids.data, Number);
        const dec = ids.length ? tok.decode(ids) : '';
        const decSkip = ids.length ? tok.decode(ids, { skip_special_tokens: true }) : '';
        lines.push(JSON.stringify({ name: e.name, ids, ids_nospecial: idsNs, ids_split: null,
            decoded: dec, decoded_skip: decSkip,
            decoded_b64: Buffer.from(dec, 'utf8').toString('base64'),
            decoded_skip_b64: Buffer.from(decSkip, 'utf8').toString('base64') }));
    }
    fs.writeFileSync(path.join(outDir, name + '.jsonl'), lines.join('\n') + '\n');
    console.error(`wrote ${outDir}/${name}.jsonl (${entries.length} entries)`);
}
