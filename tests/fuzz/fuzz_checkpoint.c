/*
 * fuzz_checkpoint.c - libFuzzer target for lg_ckpt_open on a whole model
 * directory: the input is config.json, a NUL byte, then model.safetensors,
 * written to a fresh directory under $TMPDIR (default /tmp; a tmpfs such as
 * /dev/shm is faster). It reaches what the two parser targets do not: the
 * config x tensor-table cross-checks (required tensors, dtypes, shapes, the
 * architecture table) and the error paths of the loader.
 *
 * Checks beyond "no crash": after a successful open every role the
 * architecture has is found with the expected shape and lies inside its file.
 */
// Build and run (from the repository root; each command is one line):
//   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
//     -Iinclude -Ilib -I/usr/include/cjson tests/fuzz/fuzz_checkpoint.c
//     lib/model/*.c lib/log.c lib/alloc.c -lcjson -lm -o build/fuzz_checkpoint
//   TMPDIR=/dev/shm build/fuzz_checkpoint -max_total_time=300 -max_len=8192
//     -dict=tests/fuzz/config.dict build/fuzz-corpus-checkpoint tests/fuzz/corpus/checkpoint

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[1024];
    FILE *f;
    int ok;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f)
        return -1;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static char dir[512];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memchr(data, 0, size);
    struct lg_checkpoint *c = NULL;
    uint32_t r, l, nd, d;
    uint64_t shape[2];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/fuzz-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    if (!sep)
        return 0;
    if (write_file(dir, "config.json", data, (size_t)(sep - data)) != 0 ||
        write_file(dir, "model.safetensors", sep + 1, size - (size_t)(sep - data) - 1) != 0)
        abort();
    if (lg_ckpt_open(NULL, NULL, dir, &c) == LLMGPU_OK) {
        for (r = 0; r < LG_T_COUNT; r++) {
            uint32_t nl = lg_arch_is_per_layer((enum lg_tensor_role)r) ? c->cfg.n_layer : 1;
            for (l = 0; l < nl; l++) {
                const struct lg_tensor_src *t = lg_ckpt_tensor(c, (enum lg_tensor_role)r, l);
                if (!lg_arch_has_role(&c->cfg, (enum lg_tensor_role)r)) {
                    if (t)
                        abort();
                    continue;
                }
                if (!t || t->file >= c->n_files ||
                    t->file_offset + t->nbytes > c->files[t->file].size)
                    abort();
                lg_arch_tensor_shape(&c->cfg, (enum lg_tensor_role)r, &nd, shape);
                if (t->n_dims != nd)
                    abort();
                for (d = 0; d < nd; d++)
                    if (t->shape[d] != shape[d])
                        abort();
            }
        }
        lg_ckpt_close(c);
    } else if (c) {
        abort();
    }
    return 0;
}
