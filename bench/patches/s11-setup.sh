# s11-setup.sh - sourced by the s11-run*.sh device scripts (session 11, bench/RESULTS.md):
# installs the carried Vulkan .debs, records the clocks into $OUT/clocks.csv, and
# generates the random-weight TinyLlama model (and, unless S11_7B=0, the 7B one in the
# background: wait for $MP before using it). B ENV DIR ARGS runs DIR/llmgpu bench ARGS with
# the variables ENV set; A holds the TinyLlama bench arguments.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,utilization.gpu --format=csv -lms 500 > $OUT/clocks.csv 2>&1 &
python3 tools/make_random_model.py --shape tinyllama --out /tmp/tinyllama --tokenizer tests/fixtures/tokenizers/npm/llama2 > $OUT/models.txt 2>&1
MP=
if [ "${S11_7B:-1}" != 0 ]; then
  python3 tools/make_random_model.py --shape llama2-7b --out /tmp/llama2-7b --tokenizer tests/fixtures/tokenizers/npm/llama2 >> $OUT/models.txt 2>&1 &
  MP=$!
fi
A="-m /tmp/tinyllama -p 512 -n 128 -r 3"
B() { echo "== $1 $2 $3"; env $1 LD_LIBRARY_PATH=$PWD/$2 timeout 150 $2/llmgpu bench $3; }
