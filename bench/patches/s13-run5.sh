# s13-run5.sh - session 13, run 5 (bench/RESULTS.md): the other quantized types with and
# without the f16 copies (devbin: commit c075dee; LLMGPU_PREFILL_DEQUANT=0 turns them off).
# (A first try also wrote a 7B q4_K GGUF: `llmgpu quantize --type q4_k` took longer than
# the 10-minute run allows, so q4_K is measured on TinyLlama only.)
export OUT
sh bench/device_run.sh models > $OUT/models.log 2>&1
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache LD_LIBRARY_PATH=$PWD/devbin
L=devbin/llmgpu
$L quantize /tmp/llama2-7b /tmp/7b-q8_0.gguf --type q8_0 > $OUT/quant-q8_0.log 2>&1
B() { echo "== $*"; "$@" 2>&1 | grep -E "pp|tg" ; }
{
  $L bench -m /tmp/7b-q8_0.gguf -p 512 -n 64 -r 3 > /dev/null 2>&1  # warm-up: clocks up
  for dq in "" 0 "" 0; do
    B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/7b-q8_0.gguf -p 512 -n 8 -r 3
  done
  for w in q4_k q6_k; do
    $L bench -m /tmp/tinyllama -p 16 -n 8 -r 1 --weight-type $w > /dev/null 2>&1  # kernels compiled
    for dq in "" 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --weight-type $w
    done
  done
} > $OUT/dq5.txt 2>&1
grep -E "^==|pp" $OUT/dq5.txt
