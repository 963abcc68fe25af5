#!/bin/sh
# fixtures_run.sh - regenerate the transformers fixtures and the tokenizer speed
# comparison on the GPU machine (Python transformers/tokenizers are there).
# Carry .gl/, devbin/bench_tokenizer and tests/fixtures/tokenizers/npm; results in $OUT.
for f in .gl/*.deb; do dpkg -x "$f" / ; done; ldconfig
N=tests/fixtures/tokenizers/npm
python3 tests/tools/make_tokenizer_fixtures.py --corpus tests/fixtures/tokenizer/corpus.jsonl \
    --out /tmp/fix/py $N/llama2 $N/llama3 $N/qwen3 > "$OUT/tokfix.log" 2>&1
python3 tests/tools/make_tokenizer_fixtures.py --bench $N/llama2 $N/llama3 $N/qwen3 > "$OUT/hfbench.txt" 2>&1
for t in llama2 llama3 qwen3; do echo "== $t"; devbin/bench_tokenizer $N/$t 8 3; done > "$OUT/ourbench.txt" 2>&1
mkdir -p /tmp/fix/chat && python3 tests/tools/make_chat_fixtures.py --out /tmp/fix/chat/expected.json \
    > "$OUT/chatfix.log" 2>&1
(cd /tmp/fix && tar cf "$OUT/fix.tar" .)
lscpu | grep "Model name" > "$OUT/cpu.txt"
