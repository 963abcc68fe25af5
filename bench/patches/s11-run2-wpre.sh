#!/bin/sh
# Session 11, run 2 (bench/RESULTS.md): weights into registers before the norm prologue.
# Carried: .gl/, tests/fixtures/tokenizers/npm/llama2, devbin/ (main's build, a5d0c6d),
# devbin/vw/ (llmgpu, libllmgpu.so*, check_all: a5d0c6d + s11-wpre.patch). Logs in $OUT.
. bench/patches/s11-setup.sh
B=devbin; V=devbin/vw
run() { d=$1; shift; LD_LIBRARY_PATH=$PWD/$d timeout 150 $d/llmgpu "$@"; }
for w in f16 q4_0; do for d in $B $V; do
  run $d generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum > $OUT/txt_$(basename $d)_$w; done; done
{ for s in forward kernels golden; do LD_LIBRARY_PATH=$PWD/$V LLMGPU_TEST_DATA=$PWD/tests LLMGPU_TEST_TMP=/tmp/t CK_FORK=no CK_INCLUDE_TAGS=gpu CK_RUN_SUITE=$s timeout 120 $V/check_all 2>&1 | tail -4; done; } > $OUT/check.txt 2>&1
wait $MP
A="-m /tmp/tinyllama -p 512 -n 128 -r 3"
{ for w in f16 q4_0; do
  run $B bench $A --weight-type $w >/dev/null 2>&1
  for i in 1 2; do for d in $B $V; do echo "== $d $w"; run $d bench $A --weight-type $w; done; done
  done
  for d in $B $V; do echo "== $d profile f16"; run $d bench -m /tmp/tinyllama -p 16 -n 128 -r 2 --profile; done
  A7="-m /tmp/llama2-7b -p 512 -n 64 -r 2"
  run $B bench $A7 >/dev/null 2>&1
  for i in 1 2; do for d in $B $V; do echo "== $d 7B f16"; run $d bench $A7; done; done
  for d in $B $V; do run $d generate -m /tmp/llama2-7b -p "Once upon a time" -n 40 --temp 0 --ignore-eos 2>/dev/null | md5sum; done
} > $OUT/wpre.txt 2>&1
