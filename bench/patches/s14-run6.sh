# s14-run6.sh - session 14, run 6: after the review (pipeline statistics only in a
# profiling context; SPLITK/EARLY removed): gemm_bench -s still prints registers, and
# a profiled bench still runs.
export OUT
sh bench/device_run.sh tiny > $OUT/models.log 2>&1
export LD_LIBRARY_PATH=$PWD/devbin LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
devbin/gemm_bench -r 20 -s -c 128,128,32,8,64,1 -c 128,128,32,8,64,1,1 -c 128,128,32,8,64,1,0,2 4096x4096x512 > $OUT/g.txt 2>&1
devbin/llmgpu bench -m /tmp/tinyllama -p 512 -n 32 -r 3 --profile > $OUT/prof.txt 2>&1
cat $OUT/g.txt; grep -E 'pp|tg|total' $OUT/prof.txt
