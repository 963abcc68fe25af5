#!/bin/sh
# Session 11, run 4 (bench/RESULTS.md): decode with the attention dispatch (and its barrier)
# left out: wrong results, a ceiling. devbin/vp/ as in s11-run3-prefetch.sh.
. bench/patches/s11-setup.sh
V=devbin/vp
run() { LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu "$@"; }
A="-m /tmp/tinyllama -p 512 -n 128 -r 3"
{ for w in f16 q4_0; do
  run bench $A --weight-type $w >/dev/null 2>&1
  for cfg in "X=0" "LG_SKIP_ATTN=1" "LG_SKIP_ATTN=2" "X=0" "LG_SKIP_ATTN=1" "LG_SKIP_ATTN=2"; do
    echo "== $cfg $w"; env $cfg LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu bench $A --weight-type $w
  done
done
env LG_SKIP_ATTN=1 LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu bench -m /tmp/tinyllama -p 16 -n 128 -r 2 --profile
wait $MP
A7="-m /tmp/llama2-7b -p 512 -n 64 -r 2"
for w in f16 q4_0; do
  run bench $A7 --weight-type $w >/dev/null 2>&1
  for cfg in "X=0" "LG_SKIP_ATTN=1" "LG_SKIP_ATTN=2" "X=0"; do
    echo "== 7B $cfg $w"; env $cfg LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu bench $A7 --weight-type $w
  done
done
} > $OUT/skip.txt 2>&1
