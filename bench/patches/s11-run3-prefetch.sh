#!/bin/sh
# Session 11, run 3 (bench/RESULTS.md): weights prefetched into L2 beside attention / wo.
# Carried: .gl/, tests/fixtures/tokenizers/npm/llama2, devbin/vp/ (llmgpu, libllmgpu.so*:
# a5d0c6d + s11-prefetch-skip-attn.patch; with no LG_PF_* set it records what main does).
. bench/patches/s11-setup.sh
V=devbin/vp
run() { LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu "$@"; }
for w in f16 q4_0; do
  run generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum
  LG_PF_WO=1 LG_PF_GU_MB=8 LG_PF_GU2_MB=8 run generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum
done > $OUT/md5.txt
A="-m /tmp/tinyllama -p 512 -n 128 -r 3"
{ for w in f16 q4_0; do
  run bench $A --weight-type $w >/dev/null 2>&1
  for cfg in "X=0" "LG_PF_WO=1" "LG_PF_WO=1 LG_PF_GU_MB=8" "LG_PF_WO=1 LG_PF_GU_MB=16" "X=0" "LG_PF_WO=1 LG_PF_GU_MB=8 LG_PF_GU2_MB=8" "LG_PF_WO=1 LG_PF_GU_MB=4 LG_PF_GU2_MB=12" "LG_PF_WO=1 LG_PF_GU_MB=8 LG_PF_G=528" "X=0"; do
    echo "== $cfg $w"; env $cfg LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu bench $A --weight-type $w
  done
done
wait $MP
A7="-m /tmp/llama2-7b -p 512 -n 64 -r 2"
for w in f16 q4_0; do
  run bench $A7 --weight-type $w >/dev/null 2>&1
  for cfg in "X=0" "LG_PF_WO=1" "LG_PF_WO=1 LG_PF_GU_MB=8" "X=0"; do
    echo "== 7B $cfg $w"; env $cfg LD_LIBRARY_PATH=$PWD/$V timeout 150 $V/llmgpu bench $A7 --weight-type $w
  done
done
} > $OUT/pf.txt 2>&1
