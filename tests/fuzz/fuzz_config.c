/*
 * fuzz_config.c - libFuzzer target for lg_config_parse and
 * lg_generation_config_parse (config.json / generation_config.json), fed from
 * memory without a NUL terminator.
 *
 * To instrument cJSON too, replace -lcjson -I/usr/include/cjson with the
 * upstream sources: -I$CJSON $CJSON/cJSON.c (DaveGamble/cJSON v1.7.18).
 *
 * Checks beyond "no crash": an accepted config satisfies the invariants the
 * rest of the library relies on (nonzero bounded dims, heads divide, even
 * head_dim, EOS count), and the architecture table gives a name and a shape
 * for every role of it.
 */
// Build and run (from the repository root; clang with libFuzzer; each command is one line):
//   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
//     -Iinclude -Ilib -I/usr/include/cjson tests/fuzz/fuzz_config.c
//     lib/model/*.c lib/log.c lib/alloc.c -lcjson -lm -o build/fuzz_config
//   build/fuzz_config -max_total_time=300 -max_len=4096 -dict=tests/fuzz/config.dict
//     build/fuzz-corpus-config tests/fuzz/corpus/config

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct lg_model_config cfg;
    char *buf = malloc(size ? size : 1); /* exact size: no terminator for ASan to hide behind */
    char name[256];
    uint32_t r, nd;
    uint64_t shape[2];
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (lg_config_parse(NULL, NULL, buf, size, "fuzz", &cfg) == LLMGPU_OK) {
        if (!cfg.n_embd || !cfg.n_ff || !cfg.n_layer || !cfg.n_head || !cfg.n_kv_head ||
            !cfg.head_dim || !cfg.n_vocab || !cfg.n_ctx_train || cfg.n_head % cfg.n_kv_head ||
            cfg.head_dim % 2 || cfg.n_embd > LG_CFG_MAX_EMBD || cfg.n_vocab > LG_CFG_MAX_VOCAB ||
            cfg.n_eos > LG_MAX_EOS || !(cfg.rms_norm_eps > 0) || !(cfg.rope_theta > 0) ||
            !memchr(cfg.arch_name, 0, sizeof cfg.arch_name) || !lg_arch_get(cfg.arch) ||
            !(cfg.rope_factor > 0) || !isfinite(cfg.rope_factor) ||
            (cfg.rope_scaling == LG_ROPE_SCALING_LLAMA3 &&
             (!(cfg.rope_high_freq_factor > cfg.rope_low_freq_factor) ||
              !(cfg.rope_low_freq_factor > 0) || cfg.rope_orig_ctx == 0)))
            abort();
        for (r = 0; r < LG_T_COUNT; r++) {
            if (lg_arch_tensor_name(&cfg, (enum lg_tensor_role)r, cfg.n_layer - 1, name,
                                    sizeof name) != lg_arch_has_role(&cfg, (enum lg_tensor_role)r))
                abort();
            lg_arch_tensor_shape(&cfg, (enum lg_tensor_role)r, &nd, shape);
            if (nd < 1 || nd > 2 || shape[0] == 0 || (nd == 2 && shape[1] == 0))
                abort();
        }
        (void)lg_generation_config_parse(NULL, NULL, buf, size, "fuzz", &cfg);
        if (cfg.n_eos > LG_MAX_EOS)
            abort();
    }
    free(buf);
    return 0;
}
