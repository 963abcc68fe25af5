# s14-run3.sh - session 14, run 3 (bench/RESULTS.md): f16 prefill with rope_kv.comp's
# heads a workgroup and the kept prefill recording (devbin: this session's tree) against
# 1facaa8 (devbin/base) and the large tile for TinyLlama's Q/K/V too (devbin/t80:
# -DLG_CM_BIG_TILES=80u); then the H100 GPU suites with devbin/check_all.
export OUT
sh bench/device_run.sh models > $OUT/models.log 2>&1
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
L=devbin/llmgpu
B() { echo "== $*"; "$@" 2>&1 | grep -E "pp|tg" ; }
{
  LD_LIBRARY_PATH=$PWD/devbin $L bench -m /tmp/tinyllama -p 512 -n 32 -r 5 > /dev/null 2>&1  # warm-up
  for v in devbin/base devbin/t80; do LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/tinyllama -p 16 -n 8 -r 1 > /dev/null 2>&1; done
  for i in 1 2; do
    for v in devbin/base devbin devbin/t80; do
      B env LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3
    done
  done
  echo "== devbin profile"; LD_LIBRARY_PATH=$PWD/devbin $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --profile 2>&1 | grep -A10 'prefill profile'
  for v in devbin/base devbin devbin/base devbin; do
    B env LD_LIBRARY_PATH=$PWD/$v $L bench -m /tmp/llama2-7b -p 512 -n 8 -r 3
  done
  echo "== 7B devbin profile"; LD_LIBRARY_PATH=$PWD/devbin $L bench -m /tmp/llama2-7b -p 512 -n 8 -r 2 --profile 2>&1 | grep -A10 'prefill profile'
} > $OUT/pp.txt 2>&1
cat $OUT/pp.txt
