#!/bin/sh
# device_run.sh - what bench/RESULTS.md was measured with on the lent GPU machine.
# Expects, carried from the build machine: .gl/ (Vulkan loader and runtime .debs),
# devbin/ (llmgpu, libllmgpu.so*, check_all, gemm_bench), tests/fixtures/tokenizers/npm/.
# Writes logs to $OUT. Steps are chosen by arguments: models info check bench rows sg dot wg tg prof mem mem2 cm
# ctx2048 tokfix pprof pp tiles types kl ctxloop tiny gemm rows7 pp7 longctx attnvar vars.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" / ; done
ldconfig
export LD_LIBRARY_PATH=$PWD/devbin
L=devbin/llmgpu
export LLMGPU_CACHE_DIR=/tmp/llmgpu-cache
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv > "$OUT/gpu.txt" 2>&1
# SM and memory clocks every 200 ms while we run
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,utilization.gpu --format=csv -lms 200 > "$OUT/clocks.csv" 2>&1 &
SMI=$!
for step in "$@"; do
  case $step in
  info) $L info --bandwidth > "$OUT/info.txt" 2>&1 ;;
  tiny)
    python3 tools/make_random_model.py --shape tinyllama --out /tmp/tinyllama --tokenizer tests/fixtures/tokenizers/npm/llama2 > "$OUT/models.txt" 2>&1 ;;
  models)
    python3 tools/make_random_model.py --shape tinyllama --out /tmp/tinyllama --tokenizer tests/fixtures/tokenizers/npm/llama2 > "$OUT/models.txt" 2>&1
    python3 tools/make_random_model.py --shape llama2-7b --out /tmp/llama2-7b --tokenizer tests/fixtures/tokenizers/npm/llama2 >> "$OUT/models.txt" 2>&1 ;;
  bench)
    { echo "== cold start (empty kernel cache)"; rm -rf /tmp/llmgpu-cache
      /usr/bin/time -v $L generate -m /tmp/tinyllama -p "Once upon a time" -n 16 --temp 0 2>&1 | grep -E "llmgpu:|Elapsed|Maximum resident"
      echo "== warm start"; /usr/bin/time -v $L generate -m /tmp/tinyllama -p "Once upon a time" -n 16 --temp 0 2>&1 | grep -E "llmgpu:|Elapsed|Maximum resident"
      echo "== $L bench -m /tmp/tinyllama -p 512 -n 128 -r 5 --profile"; $L bench -m /tmp/tinyllama -p 512 -n 128 -r 5 --profile
      echo "== $L bench -m /tmp/llama2-7b -p 512 -n 128 -r 3 --profile"; $L bench -m /tmp/llama2-7b -p 512 -n 128 -r 3 --profile
    } > "$OUT/bench.txt" 2>&1 ;;
  rows)
    { for w in f16 q8_0 q4_0 q4_k; do
        echo "== $L bench -m /tmp/tinyllama -p 512 -n 128 -r 3 --weight-type $w"; $L bench -m /tmp/tinyllama -p 512 -n 128 -r 3 --weight-type $w
        echo "== devbin/r4/llmgpu (ROWS=4) bench -m /tmp/tinyllama -p 512 -n 128 -r 3 --weight-type $w"; devbin/r4/llmgpu bench -m /tmp/tinyllama -p 512 -n 128 -r 3 --weight-type $w
      done
      for w in f16 q8_0 q4_0 q4_k; do
        echo "== $L bench -m /tmp/llama2-7b -p 512 -n 128 -r 3 --weight-type $w"; $L bench -m /tmp/llama2-7b -p 512 -n 128 -r 3 --weight-type $w
        echo "== devbin/r4/llmgpu (ROWS=4) bench -m /tmp/llama2-7b -p 512 -n 128 -r 3 --weight-type $w"; devbin/r4/llmgpu bench -m /tmp/llama2-7b -p 512 -n 128 -r 3 --weight-type $w
      done
    } > "$OUT/rows.txt" 2>&1 ;;
  sg)
    # decode with each mat-vec mode: default (subgroup rows for block types), and the
    # other mode forced (LLMGPU_MATVEC_SG=1 for f16, 0 for the block types)
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for w in f16 q8_0 q4_0 q4_k; do
          alt=0; [ $w = f16 ] && alt=1
          echo "== $L bench -m $m -p 512 -n 128 -r 3 --weight-type $w"; $L bench -m $m -p 512 -n 128 -r 3 --weight-type $w
          echo "== LLMGPU_MATVEC_SG=$alt $L bench -m $m -p 16 -n 128 -r 3 --weight-type $w"; LLMGPU_MATVEC_SG=$alt $L bench -m $m -p 16 -n 128 -r 3 --weight-type $w
        done
      done
      echo "== LLMGPU_FUSE_ROPE=0 $L bench -m /tmp/tinyllama -p 16 -n 128 -r 3"; LLMGPU_FUSE_ROPE=0 $L bench -m /tmp/tinyllama -p 16 -n 128 -r 3
      echo "== $L bench -m /tmp/tinyllama -p 512 -n 128 -r 3 --profile"; $L bench -m /tmp/tinyllama -p 512 -n 128 -r 3 --profile
    } > "$OUT/sg.txt" 2>&1 ;;
  dot)
    # integer dot products in the q8_0/q4_0/q4_k decode mat-vecs against the float path
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for w in q8_0 q4_0 q4_k; do
          for d in 0 1; do
            echo "== LLMGPU_MATVEC_DOT=$d $L bench -m $m -p 16 -n 128 -r 3 --weight-type $w"
            LLMGPU_MATVEC_DOT=$d $L bench -m $m -p 16 -n 128 -r 3 --weight-type $w
          done
        done
      done
    } > "$OUT/dot.txt" 2>&1 ;;
  wg)
    # workgroup size of the subgroup-row (block-type) decode mat-vecs: devbin/wgN holds
    # a build with -DLG_MATVEC_SG_WG=N (its own libllmgpu.so, hence LD_LIBRARY_PATH)
    { for m in /tmp/llama2-7b /tmp/tinyllama; do
        for w in q8_0 q4_0 q4_k; do
          for n in 256 128 64; do
            d=devbin; [ $n = 256 ] || d=devbin/wg$n
            echo "== LG_MATVEC_SG_WG=$n $d/llmgpu bench -m $m -p 16 -n 128 -r 3 --weight-type $w"
            LD_LIBRARY_PATH=$PWD/$d $d/llmgpu bench -m $m -p 16 -n 128 -r 3 --weight-type $w
          done
        done
      done
    } > "$OUT/wg.txt" 2>&1 ;;
  tg)
    # decode speed of the default kernels, no profiling (f16 rows with pp512 too)
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for w in f16 q8_0 q4_0 q4_k; do
          p=16; [ $w = f16 ] && p=512
          echo "== $L bench -m $m -p $p -n 128 -r 3 --weight-type $w"; $L bench -m $m -p $p -n 128 -r 3 --weight-type $w
        done
      done
    } > "$OUT/tg.txt" 2>&1 ;;
  prof)
    # per-stage GPU times of decode with the default mat-vecs (integer dot products on
    # the H100 for the block types)
    { for w in f16 q8_0 q4_0 q4_k; do
        echo "== $L bench -m /tmp/llama2-7b -p 16 -n 128 -r 2 --weight-type $w --profile"
        $L bench -m /tmp/llama2-7b -p 16 -n 128 -r 2 --weight-type $w --profile
      done
      for w in f16 q4_0; do
        echo "== $L bench -m /tmp/tinyllama -p 16 -n 128 -r 3 --weight-type $w --profile"
        $L bench -m /tmp/tinyllama -p 16 -n 128 -r 3 --weight-type $w --profile
      done
    } > "$OUT/prof.txt" 2>&1 ;;
  mem2)
    # peak anonymous host memory (RssAnon sampled every 10 ms; the mapped file's pages
    # are not in it) and the GPU memory the CLI reports
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for w in f16 q4_0; do
          echo "== $L generate -m $m -p hello -n 8 --temp 0 --weight-type $w (RssAnon peak, VmHWM)"
          $L generate -m $m -p hello -n 8 --temp 0 --weight-type $w > /dev/null 2> "$OUT/gen.err" &
          pid=$!; peak=0; hwm=0
          while kill -0 $pid 2>/dev/null; do
            a=$(awk '/^RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null); h=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null)
            [ -n "$a" ] && [ "$a" -gt $peak ] && peak=$a; [ -n "$h" ] && hwm=$h; sleep 0.01
          done
          wait $pid; grep -E "llmgpu:" "$OUT/gen.err"; echo "RssAnon peak: $peak kB; VmHWM (with file pages): $hwm kB"
        done
      done
    } > "$OUT/mem2.txt" 2>&1 ;;
  mem)
    # peak host memory (RSS) and GPU memory while loading and generating
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for w in f16 q4_0; do
          echo "== /usr/bin/time -v $L generate -m $m -p hello -n 8 --temp 0 --weight-type $w"
          /usr/bin/time -v $L generate -m $m -p hello -n 8 --temp 0 --weight-type $w 2>&1 | grep -E "llmgpu:|Maximum resident|Elapsed"
        done
      done; du -sh /tmp/tinyllama /tmp/llama2-7b
    } > "$OUT/mem.txt" 2>&1 ;;
  cm)
    # the tensor-core prefill GEMM (the default on the H100) against the portable one
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for c in 1 0; do
          echo "== LLMGPU_COOPMAT=$c $L bench -m $m -p 512 -n 32 -r 3"; LLMGPU_COOPMAT=$c $L bench -m $m -p 512 -n 32 -r 3
        done
      done
    } > "$OUT/cm.txt" 2>&1 ;;
  pprof)
    # prefill (and decode) profiles, f16, default kernels (tensor-core GEMM on the H100)
    # and the portable GEMM
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        echo "== $L bench -m $m -p 512 -n 32 -r 3 --profile"; $L bench -m $m -p 512 -n 32 -r 3 --profile
      done
      echo "== LLMGPU_COOPMAT=0 $L bench -m /tmp/tinyllama -p 512 -n 32 -r 3 --profile"; LLMGPU_COOPMAT=0 $L bench -m /tmp/tinyllama -p 512 -n 32 -r 3 --profile
    } > "$OUT/pprof.txt" 2>&1 ;;
  pp)
    # prefill and decode of the quantized load-time types with the default kernels, and
    # a short prompt (pp16) against the portable GEMM
    { for m in /tmp/tinyllama /tmp/llama2-7b; do
        for w in q8_0 q4_0 q4_k q6_k; do
          echo "== $L bench -m $m -p 512 -n 64 -r 2 --weight-type $w"; $L bench -m $m -p 512 -n 64 -r 2 --weight-type $w
        done
      done
      for c in 1 0; do
        echo "== LLMGPU_COOPMAT=$c $L bench -m /tmp/llama2-7b -p 16 -n 16 -r 3 --weight-type q4_0"; LLMGPU_COOPMAT=$c $L bench -m /tmp/llama2-7b -p 16 -n 16 -r 3 --weight-type q4_0
      done
    } > "$OUT/pp.txt" 2>&1 ;;
  tiles)
    # matmul_cm.comp's tile forced (devbin/cmN: -DLG_CM_BM=N -DLG_CM_BN=N) against the
    # default choice, f16 pp512
    { for m in /tmp/llama2-7b /tmp/tinyllama; do
        for d in cm128; do
          echo "== $d: devbin/$d/llmgpu bench -m $m -p 512 -n 16 -r 3"
          LD_LIBRARY_PATH=$PWD/devbin/$d devbin/$d/llmgpu bench -m $m -p 512 -n 16 -r 3
        done
      done
    } > "$OUT/tiles.txt" 2>&1 ;;
  types)
    # decode and prefill of q6_k, and of GGUF files written by `llmgpu quantize`
    { for m in tinyllama; do
        echo "== $L bench -m /tmp/$m -p 512 -n 128 -r 3 --weight-type q6_k"; $L bench -m /tmp/$m -p 512 -n 128 -r 3 --weight-type q6_k
        for w in q4_0 q4_k; do
          echo "== $L quantize /tmp/$m /tmp/$m-$w.gguf --type $w"; /usr/bin/time -f "%e s" $L quantize /tmp/$m /tmp/$m-$w.gguf --type $w 2>&1 | tail -2
          echo "== $L bench -m /tmp/$m-$w.gguf -p 512 -n 128 -r 3"; $L bench -m /tmp/$m-$w.gguf -p 512 -n 128 -r 3
          rm -f /tmp/$m-$w.gguf
        done
      done
    } > "$OUT/types.txt" 2>&1 ;;
  kl)
    # quality on the trained demo model with the H100's default decode (integer dot
    # products for q8_0/q4_0/q4_K; flags 0) and with float ones (256)
    { for w in q8_0 q4_0 q4_k q6_k; do
        for f in 0 256; do
          echo "== devbin/quant_kl models/demo models/demo/heldout.txt $w 512 $f 1024"
          LD_LIBRARY_PATH=$PWD/devbin devbin/quant_kl models/demo models/demo/heldout.txt $w 512 $f 1024
        done
      done
    } > "$OUT/kl.txt" 2>&1 ;;
  gemm)
    # one prefill GEMM per matmul_cm.comp configuration (and the portable matmul.comp),
    # TinyLlama and 7B shapes at 512 tokens: tests/tools/gemm_bench.c
    { echo "== devbin/gemm_bench -r 20"; devbin/gemm_bench -r 20; } > "$OUT/gemm.txt" 2>&1 ;;
  rows7)
    # issue 7's missing rows: TinyLlama q8_0/q4_0/q4_k prefill with enough repetitions
    # that one slowed by the clock drop after the CPU's quantization does not decide
    # the mean, and 7B q6_k
    # the 7B row runs when the models step made /tmp/llama2-7b
    { for w in f16 q8_0 q4_0 q4_k; do
        echo "== $L bench -m /tmp/tinyllama -p 512 -n 128 -r 5 --weight-type $w"; $L bench -m /tmp/tinyllama -p 512 -n 128 -r 5 --weight-type $w
      done
      if [ -d /tmp/llama2-7b ]; then
        echo "== $L bench -m /tmp/llama2-7b -p 512 -n 64 -r 2 --weight-type q6_k"; $L bench -m /tmp/llama2-7b -p 512 -n 64 -r 2 --weight-type q6_k
      fi
      echo "== $L bench -m /tmp/tinyllama -p 512 -n 32 -r 3 --profile"; $L bench -m /tmp/tinyllama -p 512 -n 32 -r 3 --profile
    } > "$OUT/rows7.txt" 2>&1 ;;
  pp7)
    # 7B prefill and decode of the load-time quantized types
    { for w in q8_0 q4_0 q4_k; do
        echo "== $L bench -m /tmp/llama2-7b -p 512 -n 64 -r 2 --weight-type $w"; $L bench -m /tmp/llama2-7b -p 512 -n 64 -r 2 --weight-type $w
      done
    } > "$OUT/pp7.txt" 2>&1 ;;
  vars)
    # builds compared (VAR_BINS: directories holding llmgpu and libllmgpu.so, e.g. builds
    # with -DLG_MATVEC_BLK32=0) on each model of VAR_MODELS (default tinyllama) and weight
    # type of VAR_TYPES (default f16): `bench -p 512 -n VAR_N -r VAR_R`, the builds
    # interleaved model by model so that they share the GPU's drift
    { for m in ${VAR_MODELS:-tinyllama}; do for w in ${VAR_TYPES:-f16}; do
        $L bench -m /tmp/$m -p 16 -n 16 -r 1 --weight-type $w > /dev/null 2>&1 # clocks up
        for d in ${VAR_BINS:-devbin}; do
          a="-m /tmp/$m -p 512 -n ${VAR_N:-128} -r ${VAR_R:-3} --weight-type $w"
          echo "== $d/llmgpu bench $a"; LD_LIBRARY_PATH=$PWD/$d timeout 150 $d/llmgpu bench $a
        done
      done; done
    } >> "$OUT/vars.txt" 2>&1 ;;
  attnvar)
    # decode attention builds compared, TinyLlama f16 (after `tiny`): each directory of
    # ATTN_BINS (llmgpu and its libllmgpu.so, e.g. builds with -DLG_ATTN_SPLIT_GQ_MAX=N)
    # in turn at each length of ATTN_P (default 512 4096 16384); 512 is a plain
    # `-p 512 -r 3`, longer ones fill a 16,512-position copy of the model first
    m=/tmp/tinyllama
    rm -rf $m-16k && cp -al $m $m-16k && rm $m-16k/config.json &&
      python3 -c "import json; c=json.load(open('$m/config.json')); c['max_position_embeddings']=16512; json.dump(c,open('$m-16k/config.json','w'))"
    { $L bench -m $m -p 512 -n 128 -r 1 > /dev/null 2>&1 # compiles, clocks up
      for p in ${ATTN_P:-512 4096 16384}; do
        for d in ${ATTN_BINS:-devbin}; do
          a="-m $m -p 512 -n 128 -r 3"
          [ $p = 512 ] || a="-m $m-16k -p $p -n 128 -r 2 --ctx $((p + 128))"
          echo "== $d/llmgpu bench $a"; LD_LIBRARY_PATH=$PWD/$d timeout 90 $d/llmgpu bench $a
        done
      done
    } >> "$OUT/attnvar.txt" 2>&1 ;;
  longctx)
    # decode speed at 128, 4,096 and 16,384 tokens of context (issue 8: within 25 % of
    # the speed at 128), f16, both shapes; the prompt fills the context first. The
    # shapes' configs stop at 2,048 / 4,096 positions: /tmp/M-16k are hard-linked copies
    # whose config.json allows 16,512 (the weights do not depend on it).
    # LONGCTX_BINS: directories holding llmgpu and libllmgpu.so to compare (default devbin)
    for m in /tmp/tinyllama /tmp/llama2-7b; do
      rm -rf $m-16k && cp -al $m $m-16k && rm $m-16k/config.json &&
        python3 -c "import json,sys; c=json.load(open('$m/config.json')); c['max_position_embeddings']=16512; json.dump(c,open('$m-16k/config.json','w'),indent=1)"
    done
    # LONGCTX_MODELS (default both), LONGCTX_P (default 128 4096 16384), LONGCTX_PROFILE=0
    # to skip the profiled run at 16,384, LONGCTX_KV (KV-cache types, default f16)
    for d in ${LONGCTX_BINS:-devbin}; do
      for m in ${LONGCTX_MODELS:-/tmp/tinyllama-16k /tmp/llama2-7b-16k}; do
        for kv in ${LONGCTX_KV:-f16}; do
          for p in ${LONGCTX_P:-128 4096 16384}; do
            echo "== $d/llmgpu bench -m $m -p $p -n 128 -r 2 --ctx $((p + 128)) --kv-type $kv"
            LD_LIBRARY_PATH=$PWD/$d $d/llmgpu bench -m $m -p $p -n 128 -r 2 --ctx $((p + 128)) --kv-type $kv
          done
          [ "${LONGCTX_PROFILE:-1}" = 0 ] && continue
          echo "== $d/llmgpu bench -m $m -p 16384 -n 64 -r 1 --ctx 16512 --profile --kv-type $kv"
          LD_LIBRARY_PATH=$PWD/$d $d/llmgpu bench -m $m -p 16384 -n 64 -r 1 --ctx 16512 --profile --kv-type $kv
        done
      done
    done >> "$OUT/longctx.txt" 2>&1 ;;
  ctxloop)
    # contexts created and freed one after another in one process (issue 10)
    { echo "== tests/tools/ctx_loop.py 600 50"
      LLMGPU_LIBRARY=$PWD/devbin/libllmgpu.so PYTHONPATH=bindings/python timeout 300 python3 tests/tools/ctx_loop.py 600 50
      echo "== tests/tools/ctx_loop.py 100 25 models/demo"
      LLMGPU_LIBRARY=$PWD/devbin/libllmgpu.so PYTHONPATH=bindings/python timeout 200 python3 tests/tools/ctx_loop.py 100 25 models/demo
    } > "$OUT/ctxloop.txt" 2>&1 ;;
  ctx2048)
    echo "== $L bench -m /tmp/tinyllama -p 1024 -n 1023 -r 1 --ctx 2048" > "$OUT/ctx2048.txt"
    $L bench -m /tmp/tinyllama -p 1024 -n 1023 -r 1 --ctx 2048 >> "$OUT/ctx2048.txt" 2>&1 ;;
  check)
    # One process per suite: on the H100, vkCreateInstance reported
    # VK_ERROR_INCOMPATIBLE_DRIVER after ~30 instances in one process (ctxloop step;
    # contexts share one instance since commit cf99f9a, not yet re-run there in one process).
    # CHECK_SUITES (default: all of them) names the suites to run
    for s in ${CHECK_SUITES:-api chat demo forward generate gguf golden gptq kernels memory quant reliability sampler state threads vk}; do
      LLMGPU_TEST_DATA=$PWD/tests LLMGPU_TEST_TMP=/tmp/t CK_FORK=no CK_INCLUDE_TAGS=gpu CK_RUN_SUITE=$s \
        timeout 300 devbin/check_all 2>&1 | grep -E "%:|:F:|:E:" | sed "s/^/$s: /"
    done > "$OUT/check_gpu.txt" 2>&1 ;;
  tokfix)
    python3 tests/tools/make_tokenizer_fixtures.py tests/fixtures/tokenizers/npm/llama2 \
      tests/fixtures/tokenizers/npm/llama3 tests/fixtures/tokenizers/npm/qwen3 --out "$OUT/tokpy" > "$OUT/tokfix.log" 2>&1
    python3 tests/tools/make_tokenizer_fixtures.py tests/fixtures/tokenizers/npm/llama3 --bench >> "$OUT/tokfix.log" 2>&1
    (cd "$OUT" && tar cf tokpy.tar tokpy && rm -rf tokpy) ;;
  esac
done
kill $SMI 2>/dev/null
