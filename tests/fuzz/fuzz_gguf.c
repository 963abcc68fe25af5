/*
 * fuzz_gguf.c - libFuzzer target for lg_gguf_parse (what lg_gguf_open runs on
 * the mmapped file) and lg_gguf_model_config, fed from memory.
 *
 * Checks beyond "no crash": every tensor accepted lies inside the input at an
 * aligned offset with nbytes == n_rows * row_bytes and row_bytes == ne[0] /
 * block * type size; every string array element and every numeric array
 * element can be read (ASan watches the reads); a model config that is
 * accepted satisfies the invariants the upload relies on (every role present
 * with its shape, head_dim even, n_head divisible by n_kv_head) and the Q/K
 * row maps stay inside the tensor.
 */
// Build and run (from the repository root; clang with libFuzzer; each command is one line):
//   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
//     -Iinclude -Ilib tests/fuzz/fuzz_gguf.c lib/model/gguf.c lib/model/arch.c
//     lib/log.c lib/alloc.c -lm -o build/fuzz_gguf
// With -DFUZZ_TOKENIZER $(pkg-config --cflags libpcre2-8 libcjson) and lib/tokenizer/*.c,
// -lcjson -lpcre2-8 -lutf8proc added, accepted files also build their tokenizer
// (lg_tok_load_gguf: the GGUF -> tokenizer.json translation) and encode a text.
//   build/fuzz_gguf -max_total_time=600 -max_len=8192
//     build/fuzz-corpus-gguf tests/fuzz/corpus/gguf
// The seed corpus comes from: python3 tests/tools/mkgguf.py --seed-corpus tests/fuzz/corpus/gguf

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#ifdef FUZZ_TOKENIZER
#include "tokenizer/tok_gguf.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct lg_gguf *g = NULL;
    uint64_t i, j;
    if (lg_gguf_parse(NULL, NULL, "fuzz", data, size, &g) != LLMGPU_OK) {
        if (g)
            abort();
        return 0;
    }
    if (g->version < 2 || g->version > 3 || g->data_offset > size ||
        (g->alignment & (g->alignment - 1)) != 0)
        abort();
    for (i = 0; i < g->n_tensors; i++) {
        const struct lg_gguf_tensor *t = &g->tensors[i];
        uint64_t n = 1;
        for (j = 0; j < t->n_dims; j++)
            n *= t->ne[j];
        if (n != t->n_elements || t->row_bytes != t->ne[0] / lg_ggml_block_size(t->type) *
                                                     lg_ggml_type_size(t->type) ||
            t->nbytes != t->n_rows * t->row_bytes || t->file_offset < g->data_offset ||
            t->file_offset + t->nbytes > size || (t->file_offset - g->data_offset) % g->alignment ||
            (const uint8_t *)t->data != data + t->file_offset)
            abort();
        if (t->nbytes)
            sink += ((const uint8_t *)t->data)[t->nbytes - 1];
        if (i && strcmp(g->tensors[i - 1].name, t->name) >= 0)
            abort();
        if (lg_gguf_find_tensor(g, t->name) != t)
            abort();
    }
    for (i = 0; i < g->n_kv; i++) {
        const struct lg_gguf_kv *kv = &g->kv[i];
        if (kv->type == LG_GGUF_ARRAY && kv->arr_type == LG_GGUF_STRING && kv->arr_n) {
            const char **p = malloc(kv->arr_n * sizeof *p);
            uint64_t *l = malloc(kv->arr_n * sizeof *l);
            if (p && l && lg_gguf_arr_strings(kv, p, l) == 0)
                for (j = 0; j < kv->arr_n; j++)
                    if (l[j])
                        sink += (unsigned char)p[j][l[j] - 1];
            free(p);
            free(l);
        } else if (kv->type == LG_GGUF_ARRAY && kv->arr_n) {
            double d = lg_gguf_arr_f64(kv, 0);
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits); /* a cast of a huge double would be UB */
            sink += (uint64_t)lg_gguf_arr_i64(kv, kv->arr_n - 1);
            sink += bits;
        } else if (kv->type == LG_GGUF_STRING) {
            if (kv->str[kv->str_len] != '\0')
                abort();
        }
    }
    if (lg_gguf_model_config(g, NULL) == LLMGPU_OK) {
        const struct lg_model_config *c = &g->cfg;
        uint32_t r, l, nd;
        uint64_t shape[2];
        if (!c->n_embd || !c->n_head || !c->n_kv_head || c->head_dim % 2 || c->n_head % c->n_kv_head ||
            !c->n_layer || !c->n_vocab)
            abort();
        for (r = 0; r < LG_T_COUNT; r++)
            for (l = 0; l < (lg_arch_is_per_layer((enum lg_tensor_role)r) ? c->n_layer : 1); l++) {
                const struct lg_gguf_tensor *t = lg_gguf_tensor_role(g, (enum lg_tensor_role)r, l);
                if (!lg_arch_has_role(c, (enum lg_tensor_role)r)) {
                    if (t)
                        abort();
                    continue;
                }
                if (!t)
                    abort();
                lg_arch_tensor_shape(c, (enum lg_tensor_role)r, &nd, shape);
                if (t->shape[0] != shape[0] || (nd == 2 && t->shape[1] != shape[1]))
                    abort();
                if (lg_gguf_role_permuted(g, (enum lg_tensor_role)r)) {
                    uint64_t row;
                    for (row = 0; row < t->n_rows; row++) {
                        uint64_t f = lg_gguf_qk_file_row(row, c->head_dim);
                        if (f >= t->n_rows || lg_gguf_qk_hf_row(f, c->head_dim) != row)
                            abort();
                    }
                }
            }
    }
#ifdef FUZZ_TOKENIZER
    {
        struct lg_tokenizer *t = NULL;
        if (lg_tok_load_gguf(NULL, NULL, g, 0, &t) == LLMGPU_OK) {
            static const char text[] = "Hello <s> world\n\xe2\x96\x81 123";
            int32_t ids[256];
            size_t n = 256;
            char out[1024];
            size_t len = sizeof out;
            if (lg_tok_encode(t, text, sizeof text - 1, 3, ids, &n) == LLMGPU_OK)
                lg_tok_decode(t, ids, n, 0, out, &len);
            lg_tok_free(t);
        } else if (t) {
            abort();
        }
    }
#endif
    lg_gguf_close(g);
    return 0;
}
