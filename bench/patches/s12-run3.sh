# s12-run3.sh - session 12, run 3 (bench/RESULTS.md): decode attention variants at long
# context. devbin: f2789d8 + s12-kvq8-magic.patch (int8 to float from the bytes' bits);
# devbin/i2f: f2789d8 (int8 to float by conversions; built then as the patch's tree
# with a knob that selected f2789d8's code); devbin/k16: devbin's tree built with
# -DLG_ATTN_SPLIT_K16=1 (f16 K rows by 16-byte loads).
export OUT
[ -d /tmp/llama2-7b ] || sh bench/device_run.sh models > $OUT/models.log 2>&1
L() { LONGCTX_PROFILE=0 sh bench/device_run.sh longctx; }
LONGCTX_BINS="devbin devbin/k16" LONGCTX_MODELS=/tmp/tinyllama-16k LONGCTX_KV=f16 LONGCTX_P="512 16384" L
LONGCTX_BINS="devbin devbin/i2f" LONGCTX_MODELS=/tmp/tinyllama-16k LONGCTX_KV=q8_0 LONGCTX_P="512 16384" L
LONGCTX_BINS="devbin devbin/i2f" LONGCTX_MODELS=/tmp/llama2-7b-16k LONGCTX_KV=q8_0 LONGCTX_P="16384" L
LONGCTX_BINS="devbin devbin/k16" LONGCTX_MODELS=/tmp/llama2-7b-16k LONGCTX_KV=f16 LONGCTX_P="512 16384" L
grep -E "^==|tg" $OUT/longctx.txt
