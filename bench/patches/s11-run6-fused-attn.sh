#!/bin/sh
# Session 11, run 6 (bench/RESULTS.md): decode attention inside the Q/K/V dispatch.
# Carried: .gl/, tests/fixtures/tokenizers/npm/llama2, devbin/ (main's build, a5d0c6d),
# devbin/vfa/ (llmgpu, libllmgpu.so*: a5d0c6d + s11-fused-attn.patch, CFLAGS="-O2 -g").
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,utilization.gpu --format=csv -lms 500 > $OUT/clocks.csv 2>&1 &
python3 tools/make_random_model.py --shape tinyllama --out /tmp/tinyllama --tokenizer tests/fixtures/tokenizers/npm/llama2 > $OUT/models.txt 2>&1
python3 tools/make_random_model.py --shape llama2-7b --out /tmp/llama2-7b --tokenizer tests/fixtures/tokenizers/npm/llama2 >> $OUT/models.txt 2>&1 &
MP=$!
V=devbin/vfa
G="generate -m /tmp/tinyllama -p Once -n 200 --temp 0 --ignore-eos"
for w in f16 q4_0; do
  LD_LIBRARY_PATH=$PWD/devbin devbin/llmgpu $G --weight-type $w 2>/dev/null | md5sum
  LG_FUSE_ATTN=1 LD_LIBRARY_PATH=$PWD/$V $V/llmgpu $G --weight-type $w 2>/dev/null | md5sum
done > $OUT/md5.txt
A="-m /tmp/tinyllama -p 512 -n 128 -r 3"
B() { echo "== $1 $2 $3"; env $1 LD_LIBRARY_PATH=$PWD/$2 timeout 150 $2/llmgpu bench $3; }
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
