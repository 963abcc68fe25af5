export OUT
[ -d /tmp/llama2-7b ] || sh bench/device_run.sh models > $OUT/models.log 2>&1
CHECK_SUITES="forward" sh bench/device_run.sh check
cat $OUT/check_gpu.txt
LONGCTX_BINS="devbin devbin/k16" LONGCTX_MODELS=/tmp/tinyllama-16k LONGCTX_KV="f16" LONGCTX_P="512 4096 16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
LONGCTX_MODELS=/tmp/tinyllama-16k LONGCTX_KV="q8_0" LONGCTX_P="512 4096 16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
LONGCTX_MODELS=/tmp/llama2-7b-16k LONGCTX_KV="f16 q8_0" LONGCTX_P="512 16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
LONGCTX_BINS="devbin/k16" LONGCTX_MODELS=/tmp/llama2-7b-16k LONGCTX_KV="f16" LONGCTX_P="16384" LONGCTX_PROFILE=0 sh bench/device_run.sh longctx
grep -E "^==|tg|pp" $OUT/longctx.txt
