/* simple.c - the smallest complete program: load a model, tokenize a prompt,
 * prefill, then a greedy decode loop that prints each token, and free.
 * usage: simple [MODEL_DIR] [PROMPT] */
#include <stdio.h>
#include <string.h>

#include "llmgpu.h"

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/demo";
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
    struct llmgpu_context_params cp;
    struct llmgpu_model_params mp;
    struct llmgpu_session_params sp;
    struct llmgpu_context *ctx = NULL;
    struct llmgpu_model *model = NULL;
    struct llmgpu_session *s = NULL;
    int32_t ids[512], tok;
    size_t n = 512;
    enum llmgpu_status st;

    llmgpu_context_params_init(&cp);
    llmgpu_model_params_init(&mp);
    llmgpu_session_params_init(&sp);
    if ((st = llmgpu_context_create(&cp, &ctx)) != LLMGPU_OK ||
        (st = llmgpu_model_load(ctx, dir, &mp, &model)) != LLMGPU_OK ||
        (st = llmgpu_tokenize(model, prompt, strlen(prompt),
                              LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL,
                              ids, &n)) != LLMGPU_OK ||
        (st = llmgpu_session_create(model, &sp, &s)) != LLMGPU_OK ||
        (st = llmgpu_session_prefill(s, ids, n)) != LLMGPU_OK)
        goto done;
    printf("%s", prompt);
    for (int i = 0; i < 32; i++) {
        char piece[128];
        size_t len = sizeof piece;
        if ((st = llmgpu_session_sample_greedy(s, &tok)) != LLMGPU_OK ||
            llmgpu_model_token_is_eog(model, tok))
            break;
        if (llmgpu_token_to_piece(model, tok, piece, &len) == LLMGPU_OK)
            fwrite(piece, 1, len, stdout);
        if ((st = llmgpu_session_decode(s, tok)) != LLMGPU_OK)
            break;
    }
    printf("\n");
done:
    if (st != LLMGPU_OK)
        fprintf(stderr, "simple: %s\n", llmgpu_status_string(st));
    llmgpu_session_free(s);
    llmgpu_model_free(model);
    llmgpu_context_free(ctx);
    return st == LLMGPU_OK ? 0 : 1;
}
