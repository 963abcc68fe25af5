# s13-run2.sh - session 13, run 2 (bench/RESULTS.md): where the f16 copies stop paying
# (chunks of 4-16 tokens), TinyLlama pp512 after a warm-up, and the 7B q4_0 profile.
# devbin: as run 1 (LLMGPU_PREFILL_DEQUANT=1 forces the copies at any chunk, 0 never).
export OUT
L=devbin/llmgpu
sh bench/device_run.sh models > $OUT/models.log 2>&1
export LD_LIBRARY_PATH=$PWD/devbin LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
$L quantize /tmp/llama2-7b /tmp/7b-q4_0.gguf --type q4_0 > $OUT/quant-q4_0.log 2>&1
B() { echo "== $*"; "$@" 2>&1 | grep -E "pp|tg|clock|GB/s" ; }
{
  $L bench -m /tmp/tinyllama -p 512 -n 128 -r 5 > /dev/null 2>&1  # warm-up: clocks up
  for w in q4_0 q8_0; do
    for dq in "" 0 "" 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --weight-type $w
    done
  done
  for p in 4 8 16; do
    for dq in 1 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/tinyllama -p $p -n 8 -r 3 --weight-type q4_0
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/7b-q4_0.gguf -p $p -n 8 -r 3
    done
  done
  echo "== $L bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile"; $L bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile 2>&1
  echo "== LLMGPU_PREFILL_DEQUANT=0 $L bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile"; LLMGPU_PREFILL_DEQUANT=0 $L bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile 2>&1
} > $OUT/dq2.txt 2>&1
grep -E "^==|pp" $OUT/dq2.txt
