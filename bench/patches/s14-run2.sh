# s14-run2.sh - session 14, run 2 (bench/RESULTS.md): TinyLlama f16 prefill with the
# large tile on K = 2048 (devbin/k2048: -DLG_CM_BIG_K=2048u) against main (devbin).
export OUT
sh bench/device_run.sh tiny > $OUT/models.log 2>&1
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
L=devbin/llmgpu
B() { echo "== $*"; "$@" 2>&1 | grep -E "pp|tg|clock" ; }
{
  LD_LIBRARY_PATH=$PWD/devbin $L bench -m /tmp/tinyllama -p 512 -n 32 -r 5 > /dev/null 2>&1  # warm-up
  LD_LIBRARY_PATH=$PWD/devbin/k2048 $L bench -m /tmp/tinyllama -p 16 -n 8 -r 1 > /dev/null 2>&1  # compile
  for i in 1 2 3; do
    for v in devbin devbin/k2048; do
      B env LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3
    done
  done
  for v in devbin devbin/k2048; do
    echo "== $v profile"; LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --profile 2>&1 | grep -A12 -i 'prefill'
  done
} > $OUT/k2048.txt 2>&1
cat $OUT/k2048.txt
