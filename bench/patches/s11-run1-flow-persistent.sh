#!/bin/sh
# Session 11, run 1 (bench/RESULTS.md): persistent flow-mode decode against the barriers.
# Carried: .gl/, tests/fixtures/tokenizers/npm/llama2, devbin/ (main's build, a5d0c6d),
# devbin/vflow/ (llmgpu, libllmgpu.so*: ca99099 + s11-flow-persistent-edge.patch,
# make CFLAGS="-O2 -g -DLG_FLOW=1"). Run from the repository root; logs in $OUT.
S11_7B=0
. bench/patches/s11-setup.sh
B=devbin; F=devbin/vflow
run() { d=$1; shift; LD_LIBRARY_PATH=$PWD/$d timeout 120 $d/llmgpu "$@"; }
for w in f16 q4_0; do
  run $B generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w > $OUT/txt_base_$w 2>&1
  for g in 132 528; do LG_FLOW_G=$g run $F generate -m /tmp/tinyllama -p "Once upon a time" -n 200 --temp 0 --ignore-eos --weight-type $w > $OUT/txt_flow_${g}_$w 2>&1; done
done
md5sum $OUT/txt_* > $OUT/md5.txt
A="-m /tmp/tinyllama -p 512 -n 128 -r 3"
{ for w in f16 q4_0; do
  run $B bench $A --weight-type $w >/dev/null 2>&1
  echo "== base $w"; run $B bench $A --weight-type $w
  for g in ${GS:-66 132 264 528 1056}; do for bo in ${BOS:-256 16}; do
    echo "== flow G=$g BO=$bo $w"; LG_FLOW_G=$g LG_FLOW_BACKOFF=$bo run $F bench $A --weight-type $w
  done; done
  echo "== base $w"; run $B bench $A --weight-type $w
done; } > $OUT/flow.txt 2>&1
