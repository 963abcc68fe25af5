/*
 * fuzz_safetensors.c - libFuzzer target for lg_safetensors_parse (the parser
 * lg_ckpt_open uses on each mmapped file), fed from memory.
 *
 * To instrument cJSON too, replace -lcjson -I/usr/include/cjson with the
 * upstream sources: -I$CJSON $CJSON/cJSON.c (DaveGamble/cJSON v1.7.18).
 *
 * Checks beyond "no crash": every tensor accepted lies inside the input, has
 * nbytes == prod(shape) * dtype size, and converts to f32 without reading
 * outside it (ASan watches the reads).
 */
// Build and run (from the repository root; clang with libFuzzer; each command is one line):
//   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
//     -Iinclude -Ilib -I/usr/include/cjson tests/fuzz/fuzz_safetensors.c
//     lib/model/*.c lib/log.c lib/alloc.c -lcjson -lm -o build/fuzz_safetensors
//   build/fuzz_safetensors -max_total_time=300 -max_len=4096
//     build/fuzz-corpus-safetensors tests/fuzz/corpus/safetensors

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct lg_tensor_table tab = {0};
    uint32_t i, d;
    float out[64];
    if (lg_safetensors_parse(NULL, NULL, "fuzz", data, size, 0, &tab) == LLMGPU_OK) {
        for (i = 0; i < tab.n; i++) {
            const struct lg_tensor_src *t = &tab.v[i];
            uint64_t n = 1;
            for (d = 0; d < t->n_dims; d++)
                n *= t->shape[d];
            if (n != t->n_elements || t->nbytes != n * lg_dtype_size(t->dtype) ||
                t->file_offset + t->nbytes > size ||
                (const uint8_t *)t->data != data + t->file_offset)
                abort();
            if (t->n_elements)
                lg_convert_to_f32(t->dtype, t->data, out, (size_t)LG_MIN(t->n_elements, 64));
        }
        /* a second file appended to the same table must keep the first intact */
        if (tab.n && lg_safetensors_parse(NULL, NULL, "fuzz2", data, size, 1, &tab) != LLMGPU_OK)
            abort();
    }
    lg_tensor_table_free(NULL, &tab);
    return 0;
}
