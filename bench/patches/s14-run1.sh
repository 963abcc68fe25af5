# s14-run1.sh - session 14, run 1 (bench/RESULTS.md): matmul_cm.comp's tiles and
# measurement knobs in isolation (devbin/gemm_bench of this session's tree).
export OUT
for f in .gl/*.deb; do dpkg -x "$f" / ; done
ldconfig
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,utilization.gpu --format=csv -lms 500 > $OUT/clocks.csv 2>&1 &
G=devbin/gemm_bench
C="-c 128,128,32,8,64,1 -c 128,128,32,8,64,1,0,0,0,1 -c 128,128,32,8,64,1,1 -c 128,128,32,8,64,1,0,2 -c 128,128,32,8,64,1,0,1
   -c 128,128,32,8,64,1,0,0,2 -c 128,128,32,8,64,1,0,0,4 -c 128,128,32,16,32,1 -c 128,128,32,16,32,1,0,0,0,1 -c 128,128,64,8,64,1
   -c 64,64,64,8,32,0 -c 64,64,64,8,32,0,0,0,0,1 -c 64,64,64,8,32,1 -c 64,64,64,8,32,1,0,0,0,1 -c 64,64,64,8,32,0,0,2
   -c 128,64,64,8,64,0 -c 128,64,32,8,64,1 -c 128,64,32,8,64,1,0,0,0,1"
$G -r 20 -s $C 4096x4096x512 > $OUT/g7a.txt 2>&1
$G -r 20 $C 12288x4096x512 4096x11008x512 4096x4096x1024 > $OUT/g7b.txt 2>&1
$G -r 20 $C 2560x2048x512 5632x2048x512 2048x5632x512 11264x2048x512 > $OUT/gt.txt 2>&1
cat $OUT/g7a.txt | grep -v '^  \[' ; grep -h 'TFLOP' $OUT/g7b.txt $OUT/gt.txt | awk '{$1=$1};1'
grep -h '^  \[' $OUT/g7a.txt | sed 's/matmul_cm.comp//' | cut -c1-400 | head -20
