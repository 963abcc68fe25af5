#!/bin/sh
# Session 11, run 6 (bench/RESULTS.md): decode attention inside the Q/K/V dispatch.
# Carried: .gl/, tests/fixtures/tokenizers/npm/llama2, devbin/ (main's build, a5d0c6d),
# devbin/vfa/ (llmgpu, libllmgpu.so*: a5d0c6d + s11-fused-attn.patch, CFLAGS="-O2 -g").
. bench/patches/s11-setup.sh
V=devbin/vfa
G="generate -m /tmp/tinyllama -p Once -n 200 --temp 0 --ignore-eos"
for w in f16 q4_0; do
  LD_LIBRARY_PATH=$PWD/devbin devbin/llmgpu $G --weight-type $w 2>/dev/null | md5sum
  LG_FUSE_ATTN=1 LD_LIBRARY_PATH=$PWD/$V $V/llmgpu $G --weight-type $w 2>/dev/null | md5sum
done > $OUT/md5.txt
{ for w in f16 q4_0; do
  B X=0 devbin "$A --weight-type $w" >/dev/null 2>&1
  for i in 1 2; do
    B X=0 devbin "$A --weight-type $w"
    B LG_FUSE_ATTN=1 $V "$A --weight-type $w"
  done
done
B LG_FUSE_ATTN=1 $V "-m /tmp/tinyllama -p 16 -n 128 -r 2 --profile"
B LG_FUSE_ATTN=1 $V "-m /tmp/tinyllama -p 512 -n 128 -r 2 --profile"
B X=0 devbin "-m /tmp/tinyllama -p 512 -n 128 -r 2 --profile"
wait $MP
for w in f16 q4_0; do
  LD_LIBRARY_PATH=$PWD/devbin devbin/llmgpu generate -m /tmp/llama2-7b -p Once -n 40 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum
  LG_FUSE_ATTN=1 LD_LIBRARY_PATH=$PWD/$V $V/llmgpu generate -m /tmp/llama2-7b -p Once -n 40 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum
done >> $OUT/md5.txt
A7="-m /tmp/llama2-7b -p 512 -n 64 -r 2"
for w in f16 q4_0; do
  B X=0 devbin "$A7 --weight-type $w" >/dev/null 2>&1
  for i in 1 2; do
    B X=0 devbin "$A7 --weight-type $w"
    B LG_FUSE_ATTN=1 $V "$A7 --weight-type $w"
  done
done
} > $OUT/fa.txt 2>&1
