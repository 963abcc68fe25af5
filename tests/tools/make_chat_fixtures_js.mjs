// make_chat_fixtures_js.mjs - PROVISIONAL chat-template expectations from @huggingface/jinja
// (transformers.js). Python's jinja2 is the reference (make_tokenizer_fixtures.py --chat);
// the JS engine prints booleans, None and lists differently and uses JS's %, so the
// "features" template is checked against a hand-reviewed expectation instead.
//   TRANSFORMERS_JS=/tmp/tjs node tests/tools/make_chat_fixtures_js.mjs
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const prefix = process.env.TRANSFORMERS_JS || '/tmp/npmwork';
const require = createRequire(path.join(prefix, 'package.json'));
const { Template } = require('@huggingface/jinja');
const dir = 'tests/fixtures/tokenizer/chat';
const convs = JSON.parse(fs.readFileSync(`${dir}/convs.json`, 'utf8'));
const tok = (v) => (v && typeof v === 'object' ? v.content : v);
const jobs = [];
for (const [name, t] of Object.entries(JSON.parse(fs.readFileSync(`${dir}/templates.json`, 'utf8'))))
    jobs.push([name, { chat_template: t, bos_token: '<s>', eos_token: '</s>' }]);
for (const name of ['llama3', 'qwen3']) {
    const f = `tests/fixtures/tokenizers/npm/${name}/tokenizer_config.json`;
    if (fs.existsSync(f)) jobs.push([name, JSON.parse(fs.readFileSync(f, 'utf8'))]);
}
fs.mkdirSync(`${dir}/js`, { recursive: true });
for (const [name, cfg] of jobs) {
    const tmpl = new Template(cfg.chat_template);
    const out = convs.map((c) => {
        const ctx = { messages: c.messages, add_generation_prompt: !!c.agp };
        for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token'])
            if (tok(cfg[k]) != null) ctx[k] = tok(cfg[k]);
        if (c.no_think) ctx.enable_thinking = false;
        try { return { ok: true, text: tmpl.render(ctx) }; } catch (e) { return { ok: false, err: String(e) }; }
    });
    fs.writeFileSync(`${dir}/js/${name}.json`, JSON.stringify(out, null, 1) + '\n');
    console.error(`wrote ${dir}/js/${name}.json`);
}
