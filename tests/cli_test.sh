#!/bin/sh
# cli_test.sh BUILD_DIR - the CLI and the example as a user runs them: exit codes and
# output shape, on a tiny generated model.
set -u
B=${1:-build}
T=$B/tmp/cli
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok - $1"; }
bad() { fails=$((fails + 1)); echo "not ok - $1"; return 1; }
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
# The demo's greedy story ends with </s> before 120 tokens; --ignore-eos goes on to -n.
g1=$("$L" generate -m "$D" -p "Once upon a time" -n 120 --temp 0 2>&1 >/dev/null)
g2=$("$L" generate -m "$D" -p "Once upon a time" -n 120 --temp 0 --ignore-eos 2>&1 >/dev/null)
check "generate --ignore-eos goes past the end token" sh -c \
  "! echo '$g1' | grep -q 'generated 120 tokens' && echo '$g2' | grep -q 'generated 120 tokens'"
"$L" generate -m "$T/nothing" -p x >/dev/null 2>"$T/err"; rc=$?
check "missing model: exit 1 and a message" sh -c "[ $rc -eq 1 ] && grep -q 'cannot load' $T/err"
printf 'hello world, hello again' > "$T/p.txt"
check "perplexity prints its last line" sh -c "$L perplexity -m $T/m -f $T/p.txt | tail -1 | grep -q '^perplexity: [0-9.]* mean_nll: [0-9.]* tokens: [0-9]*$'"
check "simple example runs" sh -c "$B/simple $T/m hello >/dev/null"
check "generate --weight-type q6_k" sh -c "$L generate -m $T/m -p hello -n 4 --temp 0 --ids --weight-type q6_k 2>/dev/null | awk '{exit NF == 4 ? 0 : 1}'"
"$L" generate -m "$T/m" -p hello -n 4 --weight-type q7_k >/dev/null 2>"$T/err"; rc=$?
check "unknown --weight-type: exit 2 naming q6_k" sh -c "[ $rc -eq 2 ] && grep -q 'q6_k' $T/err"
python3 tests/tools/mkmodel.py --out "$T/m32" --arch llama --dtype f16 --layers 1 --hidden 64 \
    --heads 2 --kv-heads 1 --ff 64 --vocab 320 --seed 6 >/dev/null || bad "mkmodel head_dim 32"
check "generate --kv-type q8_0 prints ids" sh -c "$L generate -m $T/m32 -p hello -n 4 --temp 0 --ids --kv-type q8_0 2>/dev/null | awk '{exit NF >= 1 ? 0 : 1}'"
"$L" generate -m "$T/m" -p hello -n 4 --kv-type q8_0 >/dev/null 2>"$T/err"; rc=$?
check "--kv-type q8_0 with head_dim 16: exit 1, says why" sh -c "[ $rc -eq 1 ] && grep -q 'multiple of 32' $T/err"
"$L" bench -m "$T/m" -p 4 -n 2 -r 1 --kv-type q4 >/dev/null 2>"$T/err"; rc=$?
check "unknown --kv-type: exit 2 naming q8_0" sh -c "[ $rc -eq 2 ] && grep -q 'q8_0' $T/err"

# llmgpu chat through a pseudo-terminal (script from util-linux), typed as a user
# would: the tiny model's Zephyr-style chat template from mkmodel.py. script runs its
# command through $SHELL -c; with dash (CI's /bin/sh) that shell stays the parent of
# llmgpu in the terminal's process group and dies of Ctrl-C's SIGINT, so the command
# execs llmgpu, and SHELL is fixed to /bin/sh so that this machine behaves like CI.
export SHELL=/bin/sh
chat() { # chat OUTFILE ARGS... < typed lines
  out=$1; shift
  script -q -e -c "exec $L chat -m $T/m -n 6 --temp 0 $*" /dev/null > "$out" 2>&1
}
printf 'hello there\nhow are you\nand now\n/save %s\n/quit\n' "$T/a.kv" | chat "$T/chat1.txt" --system "'Be brief.'"
rc=$?
check "chat: /quit exits 0" [ $rc -eq 0 ]
check "chat: a prompt on the terminal" grep -q '^> ' "$T/chat1.txt"
check "chat: a tokens/s line after each answer" \
  sh -c "[ \$(grep -c '^\[6 tokens, [0-9.]* tok/s, first token' $T/chat1.txt) -eq 3 ]"
check "chat: later turns reuse the KV cache" grep -q 'new tokens ([1-9][0-9]* reused)' "$T/chat1.txt"
printf 'hello there\nhow are you\n/save %s\n/reset\n/load %s\nand now\n/save %s\n/quit\n' \
  "$T/mid.kv" "$T/mid.kv" "$T/b.kv" | chat "$T/chat2.txt" --system "'Be brief.'"
check "chat: /reset and /load report" sh -c "grep -q 'conversation reset' $T/chat2.txt && grep -q 'loaded [0-9]* tokens, 5 messages' $T/chat2.txt"
check "chat: /save, /reset, /load continues as if uninterrupted" \
  sh -c "cmp -s $T/a.kv $T/b.kv && cmp -s $T/a.kv.chat $T/b.kv.chat"
printf '/load %s\n/quit\n' "$T/nothing.kv" | chat "$T/chat3.txt"
check "chat: /load of a missing file is an error, not an exit" \
  sh -c "grep -q 'cannot open' $T/chat3.txt && ! grep -q '^\[' $T/chat3.txt"
turns='one two three four\nfive six seven eight\nnine ten eleven\ntwelve thirteen\nfourteen fifteen\n'
printf "$turns/quit\n" | chat "$T/chat4.txt" --ctx 112
check "chat: a full context is an error by default" grep -q 'does not fit the context of 112' "$T/chat4.txt"
printf "$turns/quit\n" | chat "$T/chat5.txt" --ctx 112 --drop-oldest
check "chat: --drop-oldest drops turns and answers every one" \
  sh -c "grep -q 'dropped the oldest turn' $T/chat5.txt && [ \$(grep -c '^\[6 tokens' $T/chat5.txt) -eq 5 ]"

# Ctrl-C (typed into the terminal) stops an answer, not the program. --ignore-eos and a
# context of 16384 keep the answer going for a long time (about two minutes here), so
# Ctrl-C lands while it streams. It is typed once the answer's text has grown or 3 s after
# the prompt, whichever comes first: a greedy answer may loop on a token that prints
# nothing, so text growth alone is no signal.
( printf 'hello\n'
  i=0; until grep -q 'type a message' "$T/chat6.txt" 2>/dev/null || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done
  n0=$(wc -c < "$T/chat6.txt")
  i=0; until [ $(wc -c < "$T/chat6.txt") -gt $((n0 + 200)) ] || [ $i -ge 30 ]; do sleep 0.1; i=$((i + 1)); done
  printf '\003'; sleep 1; printf '/quit\n' ) | chat "$T/chat6.txt" -n 0 --ctx 16384 --ignore-eos
rc=$?
check "chat: Ctrl-C stops the answer and the chat goes on" \
  sh -c "[ $rc -eq 0 ] && grep -q 'interrupted' $T/chat6.txt && grep -q '^\[[0-9]* tokens' $T/chat6.txt" ||
  { echo "# rc $rc; the end of the chat:"; tail -c 800 "$T/chat6.txt" | sed 's/^/# /'; }

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
