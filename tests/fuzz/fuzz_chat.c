/*
 * fuzz_chat.c - libFuzzer target for lib/chat (the Jinja chat-template renderer).
 *
 * The first input byte picks the mode:
 *   even: the rest is a template, rendered for a few fixed conversations with and without
 *         the generation prompt;
 *   odd:  the rest is conversation text for one of the real templates (byte 1 picks which):
 *         split at 0x01 bytes into messages whose roles cycle through system/user/
 *         assistant/tool (byte 2 picks the start), rendered with both flags.
 * Checks: no crash or leak; the status is OK, UNSUPPORTED or INVALID_ARGUMENT (or
 * OUT_OF_HOST_MEMORY when the arena limit is hit); a successful render gives the same
 * bytes twice and honours the two-call idiom. Small limits keep each input fast.
 * The real templates are read once from tests/fixtures/chat/templates and
 * $LG_FUZZ_TOKENIZERS (default tests/fixtures/tokenizers/npm: llama3, qwen3).
 * Build and run from the repository root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude -Ilib \
 *     -o build/fuzz_chat tests/fuzz/fuzz_chat.c lib/chat/chat.c lib/chat/jinja_*.c \
 *     lib/log.c lib/alloc.c -lutf8proc -lcjson -lm
 *   mkdir -p build/fuzz-corpus-chat && build/fuzz_chat -max_total_time=600 -max_len=8192 \
 *     -timeout=10 -dict=tests/fuzz/chat.dict build/fuzz-corpus-chat tests/fuzz/corpus_chat
 * (the first corpus directory receives new inputs; the seeds stay untouched)
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_REAL 9
static char *real[N_REAL];
static int loaded;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *p;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) == (size_t)n) {
        p[n] = 0;
    } else {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static char *from_config(const char *root, const char *name) {
    char path[1024], *s, *t = NULL;
    cJSON *j, *ct;
    snprintf(path, sizeof path, "%s/%s/tokenizer_config.json", root, name);
    if (!(s = slurp(path)))
        return NULL;
    j = cJSON_Parse(s);
    ct = cJSON_GetObjectItem(j, "chat_template");
    if (cJSON_IsString(ct))
        t = strdup(ct->valuestring);
    cJSON_Delete(j);
    free(s);
    return t;
}

static void load_all(void) {
    static const char *const files[] = {"llama2", "mistral", "mistral_v3", "zephyr", "chatml",
                                        "qwen25", "edge_expr"};
    const char *root = getenv("LG_FUZZ_TOKENIZERS");
    size_t i;
    char path[256];
    if (!root)
        root = "tests/fixtures/tokenizers/npm";
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "tests/fixtures/chat/templates/%s.jinja", files[i]);
        real[i] = slurp(path);
    }
    real[7] = from_config(root, "llama3");
    real[8] = from_config(root, "qwen3");
    loaded = 1;
}

static void check(const char *tmpl, const struct llmgpu_chat_message *m, size_t n, uint32_t flags) {
    struct lg_chat_opts o = {0};
    size_t len = 0, len2;
    char *a, *b;
    enum llmgpu_status st;
    o.max_steps = 10000;
    o.max_depth = 96;
    o.max_bytes = 8u << 20;
    o.now = 1768478400;
    st = lg_chat_render(NULL, NULL, tmpl, "<s>", "</s>", m, n, flags, &o, NULL, &len);
    if (st != LLMGPU_OK) {
        if (st != LLMGPU_ERR_UNSUPPORTED && st != LLMGPU_ERR_INVALID_ARGUMENT &&
            st != LLMGPU_ERR_OUT_OF_HOST_MEMORY)
            __builtin_trap();
        return;
    }
    a = malloc(len + 1);
    b = malloc(len + 1);
    len2 = len;
    if (lg_chat_render(NULL, NULL, tmpl, "<s>", "</s>", m, n, flags, &o, a, &len2) != LLMGPU_OK ||
        len2 != len)
        __builtin_trap();
    if (len) {
        len2 = len - 1;
        if (lg_chat_render(NULL, NULL, tmpl, "<s>", "</s>", m, n, flags, &o, b, &len2) !=
                LLMGPU_ERR_BUFFER_TOO_SMALL || len2 != len)
            __builtin_trap();
        len2 = len;
        if (lg_chat_render(NULL, NULL, tmpl, "<s>", "</s>", m, n, flags, &o, b, &len2) != LLMGPU_OK ||
            len2 != len || memcmp(a, b, len) != 0)
            __builtin_trap();
    }
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const struct llmgpu_chat_message convs[][4] = {
        {{"system", "Be brief."}, {"user", "hi <think>x</think>"}, {"assistant", "<think>\nr\n</think>\n\nok"}, {"user", "\u00e9 \xF0\x9F\x9A\x80"}},
        {{"user", ""}, {"tool", "{\"a\": 1}"}, {"assistant", NULL}, {"user", "  "}},
    };
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    if (!loaded)
        load_all();
    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        char *t = malloc(size);
        memcpy(t, data + 1, size - 1);
        t[size - 1] = 0; /* an embedded NUL just ends the template early */
        check(t, convs[0], 4, 0);
        check(t, convs[1], 4, LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT);
        check(t, convs[0], 0, LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT);
        free(t);
    } else if (size >= 3) {
        const char *tmpl = real[data[1] % N_REAL];
        struct llmgpu_chat_message m[16];
        char *text = malloc(size - 2);
        size_t n = 0, i, start = 0;
        if (!tmpl) {
            free(text);
            return 0;
        }
        memcpy(text, data + 3, size - 3);
        text[size - 3] = 0;
        for (i = 0; i <= size - 3 && n < 16; i++) {
            if (i == size - 3 || text[i] == 1 || text[i] == 0) {
                int end = i == size - 3 || text[i] == 0;
                text[i] = 0;
                m[n].role = roles[(data[2] + n) % 4];
                m[n].content = text + start;
                n++;
                start = i + 1;
                if (end)
                    break;
            }
        }
        check(tmpl, m, n, 0);
        check(tmpl, m, n, LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT);
        free(text);
    }
    return 0;
}
