#!/bin/sh
# cli_test.sh BUILD_DIR - the CLI and the example as a user runs them: exit codes and
# output shape, on a tiny generated model.
set -u
B=${1:-build}
T=$B/tmp/cli
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok - $1"; }
bad() { fails=$((fails + 1)); echo "not ok - $1"; }
check() { name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

rm -rf "$T" && mkdir -p "$T"
python3 tests/tools/mkmodel.py --out "$T/m" --arch llama --dtype f16 --layers 2 --hidden 64 \
    --heads 4 --kv-heads 2 --ff 128 --vocab 320 --seed 5 >/dev/null || bad "mkmodel"
L="$B/llmgpu"

check "help" sh -c "$L --help | grep -q 'usage: llmgpu'"
"$L" nonsense >/dev/null 2>&1; check "unknown command exits 2" [ $? -eq 2 ]
check "info marks the chosen device" sh -c "$L info | grep -q '^\* [0-9]*:'"
LLMGPU_DEVICE=99 "$L" info >/dev/null 2>&1; check "bad LLMGPU_DEVICE fails" [ $? -eq 1 ]
check "tokenize adds BOS" sh -c "$L tokenize -m $T/m -p 'ab' | grep -q '^1 '"
printf 'ab' > "$T/ab.txt"
check "tokenize -f equals -p" sh -c "[ \"\$($L tokenize -m $T/m -f $T/ab.txt)\" = \"\$($L tokenize -m $T/m -p ab)\" ]"
ids=$("$L" generate -m "$T/m" -p "hello" -n 8 --temp 0 --ids 2>/dev/null)
check "generate --ids prints 8 ids" sh -c "echo '$ids' | awk '{exit NF == 8 ? 0 : 1}'"
ids2=$("$L" generate -m "$T/m" -p "hello" -n 8 --temp 0 --ids 2>/dev/null)
check "greedy generation is deterministic" [ "$ids" = "$ids2" ]
s1=$("$L" generate -m "$T/m" -p "hello" -n 8 --seed 7 --ids 2>/dev/null)
s2=$("$L" generate -m "$T/m" -p "hello" -n 8 --seed 7 --ids 2>/dev/null)
check "seeded sampling is reproducible" [ "$s1" = "$s2" ]
D=models/demo
full=$("$L" generate -m "$D" -p "Once upon a time" -n 24 --temp 0 2>/dev/null)
cut=$("$L" generate -m "$D" -p "Once upon a time" -n 24 --temp 0 --stop "." --stop "zzz" 2>/dev/null)
stop_ok() {
  case $full in *.*) ;; *) return 1;; esac
  case $cut in *.*|'') return 1;; esac
  [ "${full#"$cut"}" != "$full" ]
}
check "generate --stop ends the text before the stop string" stop_ok
"$L" generate -m "$T/nothing" -p x >/dev/null 2>"$T/err"; rc=$?
check "missing model: exit 1 and a message" sh -c "[ $rc -eq 1 ] && grep -q 'cannot load' $T/err"
printf 'hello world, hello again' > "$T/p.txt"
check "perplexity prints its last line" sh -c "$L perplexity -m $T/m -f $T/p.txt | tail -1 | grep -q '^perplexity: [0-9.]* mean_nll: [0-9.]* tokens: [0-9]*$'"
check "simple example runs" sh -c "$B/simple $T/m hello >/dev/null"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
