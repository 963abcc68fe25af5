# s12-run2.sh - session 12, run 2 (bench/RESULTS.md). devbin: f2789d8 with the V scale
# multiplied into the four values (VUNPACK) instead of into the softmax weight; devbin/k16:
# the same tree built with -DLG_ATTN_SPLIT_K16=1.
export OUT
[ -d /tmp/llama2-7b ] || sh bench/device_run.sh models > $OUT/models.log 2>&1
CHECK_SUITES="forward" sh bench/device_run.sh check
cat $OUT/check_gpu.txt
LONGCTX_BINS="devbin devbin/k16" LONGCTX_MODELS=/tmp/tinyllama-16k LONGCTX_KV="f16" LONGCTX_P="512 4096 16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
LONGCTX_MODELS=/tmp/tinyllama-16k LONGCTX_KV="q8_0" LONGCTX_P="512 4096 16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
LONGCTX_MODELS=/tmp/llama2-7b-16k LONGCTX_KV="f16 q8_0" LONGCTX_P="512 16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
LONGCTX_BINS="devbin/k16" LONGCTX_MODELS=/tmp/llama2-7b-16k LONGCTX_KV="f16" LONGCTX_P="16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
grep -E "^==|tg|pp" $OUT/longctx.txt
