# s13-run3.sh - session 13, run 3 (bench/RESULTS.md): f16 copies made while the GEMM
# before runs (devbin, LG_DQ_OVERLAP=1, two scratch regions) against copies made in the
# interval just before their GEMM (devbin/seq, built with -DLG_DQ_OVERLAP=0, one region);
# the GPU suites with the copies on.
export OUT
sh bench/device_run.sh models > $OUT/models.log 2>&1
CHECK_SUITES="quant forward gptq" sh bench/device_run.sh check
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
LD_LIBRARY_PATH=$PWD/devbin devbin/llmgpu quantize /tmp/llama2-7b /tmp/7b-q4_0.gguf --type q4_0 > $OUT/quant-q4_0.log 2>&1
B() { d=$(dirname $1); echo "== $*"; LD_LIBRARY_PATH=$PWD/$d "$@" 2>&1 | grep -E "pp|tg" ; }
{
  B devbin/llmgpu bench -m /tmp/tinyllama -p 512 -n 128 -r 5 > /dev/null  # warm-up: clocks up
  for i in 1 2; do
    for b in devbin devbin/seq; do
      B $b/llmgpu bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 3
    done
  done
  for w in q4_0 q8_0; do
    for b in devbin devbin/seq devbin devbin/seq; do
      B $b/llmgpu bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --weight-type $w
    done
  done
  for b in devbin devbin/seq; do
    B $b/llmgpu bench -m /tmp/7b-q4_0.gguf -p 32 -n 8 -r 3
  done
  B devbin/llmgpu bench -m /tmp/llama2-7b -p 512 -n 8 -r 3
  echo "== devbin/llmgpu bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile"
  LD_LIBRARY_PATH=$PWD/devbin devbin/llmgpu bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile 2>&1 | sed -n '/prefill profile/,/total/p'
} > $OUT/dq3.txt 2>&1
cat $OUT/check_gpu.txt
grep -E "^==|pp" $OUT/dq3.txt
