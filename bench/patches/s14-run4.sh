# s14-run4.sh - session 14, run 4 (bench/RESULTS.md): the prefill norm's f16 output read
# by the tensor-core GEMMs (devbin: this tree; devbin/noxh: the same built with
# -DLG_XH=0): greedy text of both builds, then pp512 alternated.
export OUT
sh bench/device_run.sh models > $OUT/models.log 2>&1
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
L=devbin/llmgpu
B() { echo "== $*"; "$@" 2>&1 | grep -E "pp|tg" ; }
{
  for v in devbin devbin/noxh; do
    for w in f16 q4_0; do
      for dq in 0 1; do
        echo "$v $w dq=$dq $(LLMGPU_PREFILL_DEQUANT=$dq LD_LIBRARY_PATH=$PWD/$v $L generate -m /tmp/tinyllama --weight-type $w -p 'Once upon a time there was a model that' -n 200 --temp 0 2>/dev/null | md5sum)"
      done
    done
    echo "$v 7B f16 $(LD_LIBRARY_PATH=$PWD/$v $L generate -m /tmp/llama2-7b -p 'Once upon a time there was a model that' -n 40 --temp 0 2>/dev/null | md5sum)"
  done
} > $OUT/md5.txt 2>&1
{
  LD_LIBRARY_PATH=$PWD/devbin $L bench -m /tmp/tinyllama -p 512 -n 32 -r 5 > /dev/null 2>&1  # warm-up
  for i in 1 2; do
    for v in devbin/noxh devbin; do
      B env LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3
    done
  done
  for i in 1 2; do
    for v in devbin/noxh devbin; do
      B env LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/llama2-7b -p 512 -n 8 -r 3
    done
  done
  for v in devbin/noxh devbin; do
    B env LLMGPU_PREFILL_DEQUANT=1 LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --weight-type q4_0
  done
  echo "== devbin profile"; LD_LIBRARY_PATH=$PWD/devbin $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --profile 2>&1 | grep -A10 'prefill profile'
} > $OUT/pp.txt 2>&1
cat $OUT/md5.txt $OUT/pp.txt
