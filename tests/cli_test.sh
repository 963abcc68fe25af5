#!/bin/sh
# cli_test.sh BUILD_DIR - the CLI as a user runs it: exit codes and output shape.
set -u
B=${1:-build}
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok - $1"; }
bad() { fails=$((fails + 1)); echo "not ok - $1"; }

"$B/llmgpu" --help | grep -q "usage: llmgpu" && ok "help" || bad "help"
"$B/llmgpu" nonsense >/dev/null 2>&1; [ $? -eq 2 ] && ok "unknown command exits 2" || bad "unknown command exits 2"
"$B/llmgpu" info | grep -q "^\* [0-9]*:" && ok "info marks the chosen device" || bad "info marks the chosen device"
LLMGPU_DEVICE=99 "$B/llmgpu" info >/dev/null 2>&1; [ $? -eq 1 ] && ok "bad LLMGPU_DEVICE fails" || bad "bad LLMGPU_DEVICE fails"
"$B/simple" >/dev/null && ok "simple example runs" || bad "simple example runs"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
