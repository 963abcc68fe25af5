# s14-run5.sh - session 14, run 5: the H100 GPU suites with devbin/check_all (this tree).
export OUT
mkdir -p /tmp/t
CHECK_SUITES="forward golden kernels quant gptq generate state memory" sh bench/device_run.sh check > /dev/null 2>&1
cat $OUT/check_gpu.txt
