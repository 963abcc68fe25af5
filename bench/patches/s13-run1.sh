# s13-run1.sh - session 13, run 1 (bench/RESULTS.md): prefill GEMMs on f16 copies of
# quantized weights (dequant.comp) against dequantizing loads. devbin: this session's
# tree; LLMGPU_PREFILL_DEQUANT=0 turns the copies off, =1 forces them for every chunk.
export OUT
L=devbin/llmgpu
sh bench/device_run.sh models > $OUT/models.log 2>&1
CHECK_SUITES="quant forward gptq" sh bench/device_run.sh check
export LD_LIBRARY_PATH=$PWD/devbin LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
for w in q4_0 q8_0; do $L quantize /tmp/llama2-7b /tmp/7b-$w.gguf --type $w > $OUT/quant-$w.log 2>&1; done
B() { echo "== $*"; "$@" 2>&1 | grep -E "pp|tg|clock|GB/s" ; }
{
  B $L bench -m /tmp/llama2-7b -p 512 -n 8 -r 3
  for w in q4_0 q8_0; do
    for dq in "" 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/7b-$w.gguf -p 512 -n 8 -r 3
    done
  done
  for w in q4_0 q8_0; do
    for dq in "" 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/tinyllama -p 512 -n 8 -r 3 --weight-type $w
    done
  done
  for p in 32 64 128 256; do
    for dq in 1 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/7b-q4_0.gguf -p $p -n 8 -r 3
    done
  done
  for p in 32 64 128; do
    for dq in 1 0; do
      B env LLMGPU_PREFILL_DEQUANT=$dq $L bench -m /tmp/tinyllama -p $p -n 8 -r 3 --weight-type q4_0
    done
  done
  echo "== $L bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile"; $L bench -m /tmp/7b-q4_0.gguf -p 512 -n 8 -r 2 --profile 2>&1
} > $OUT/dq.txt 2>&1
cat $OUT/check_gpu.txt
grep -E "^==|pp" $OUT/dq.txt
