#!/bin/sh
# Session 11, run 5 (bench/RESULTS.md): only the Q/K/V -> attention edge ordered by a counter.
# Carried: .gl/, tests/fixtures/tokenizers/npm/llama2, devbin/ (main's build, a5d0c6d),
# devbin/vf/ (ca99099 + s11-flow-persistent-edge.patch, make CFLAGS="-O2 -g -DLG_FLOW=1").
. bench/patches/s11-setup.sh
export LG_FLOW_G=100000
for w in f16 q4_0; do
  LD_LIBRARY_PATH=$PWD/devbin devbin/llmgpu generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum
  LG_FLOW_EDGE=1 LG_FLOW_BACKOFF=16 LD_LIBRARY_PATH=$PWD/devbin/vf devbin/vf/llmgpu generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w 2>/dev/null | md5sum
done > $OUT/md5.txt
{ for w in f16 q4_0; do
  B X=0 devbin "$A --weight-type $w" >/dev/null 2>&1
  for i in 1 2; do
    B X=0 devbin "$A --weight-type $w"
    for bo in 256 16 0; do B "LG_FLOW_EDGE=1 LG_FLOW_BACKOFF=$bo" devbin/vf "$A --weight-type $w"; done
  done
done
LG_FLOW_EDGE=1 LG_FLOW_BACKOFF=16 LD_LIBRARY_PATH=$PWD/devbin/vf devbin/vf/llmgpu bench -m /tmp/tinyllama -p 16 -n 128 -r 2 --profile
wait $MP
A7="-m /tmp/llama2-7b -p 512 -n 64 -r 2"
for w in f16 q4_0; do
  B X=0 devbin "$A7 --weight-type $w" >/dev/null 2>&1
  B X=0 devbin "$A7 --weight-type $w"
  for bo in 16 0; do B "LG_FLOW_EDGE=1 LG_FLOW_BACKOFF=$bo" devbin/vf "$A7 --weight-type $w"; done
  B X=0 devbin "$A7 --weight-type $w"
done
} > $OUT/edge.txt 2>&1
