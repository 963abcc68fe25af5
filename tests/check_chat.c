/*
 * check_chat.c - lib/chat: chat templates rendered like transformers' apply_chat_template.
 * Parity: every template x conversation x add_generation_prompt of
 * tests/fixtures/chat/conversations.json against tests/fixtures/chat/expected.json
 * (tests/tools/make_chat_fixtures.py: transformers on the GPU machine, or its provisional
 * jinja2 engine), for the real Llama 3 and Qwen3 templates (through the tokenizer loader)
 * and the committed Llama 2, Mistral, Zephyr, ChatML, Qwen2.5 and edge-case templates.
 * Core: the two-call idiom and arguments. Errors: syntax errors, unknown constructs,
 * raise_exception, limits (nesting, loops, memory) and allocation failures. CPU only.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "testmodel.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

static char *slurp(const char *rel, size_t *len) {
    char path[1024];
    FILE *f = fopen(tu_data_path(rel, path, sizeof path), "rb");
    char *p;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return NULL;
    }
    p = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    if (fread(p, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    fclose(f);
    p[n] = 0;
    if (len)
        *len = (size_t)n;
    return p;
}

static cJSON *load_json(const char *rel) {
    char *s = slurp(rel, NULL);
    cJSON *j;
    ck_assert_msg(s != NULL, "%s missing", rel);
    j = cJSON_Parse(s);
    free(s);
    ck_assert_msg(j != NULL, "%s: bad JSON", rel);
    return j;
}

/* test_limits renders with small limits, so the hostile templates stop fast (valgrind too). */
static int small_limits;

/* Render with the fixed clock of the fixtures; returns the status, text malloc'd in *out. */
static enum llmgpu_status render(const char *tmpl, const char *bos, const char *eos,
                                 const struct llmgpu_chat_message *msgs, size_t n, uint32_t flags,
                                 struct tu_log *log, char **out, size_t *len) {
    struct lg_log lg = {tu_log_fn, log, LLMGPU_LOG_LEVEL_DEBUG};
    struct lg_chat_opts o = {0};
    enum llmgpu_status st;
    size_t need = 0;
    o.now = 1768478400; /* conversations.json strftime_now_epoch */
    if (small_limits) {
        o.max_steps = 300000;
        o.max_bytes = 16u << 20;
    }
    *out = NULL;
    st = lg_chat_render(NULL, log ? &lg : NULL, tmpl, bos, eos, msgs, n, flags, &o, NULL, &need);
    if (st != LLMGPU_OK)
        return st;
    *out = malloc(need + 1);
    ck_assert_ptr_nonnull(*out);
    *len = need;
    st = lg_chat_render(NULL, log ? &lg : NULL, tmpl, bos, eos, msgs, n, flags, &o, *out, len);
    ck_assert_int_eq(st, LLMGPU_OK);
    ck_assert_uint_eq(*len, need);
    (*out)[*len] = 0;
    return st;
}

/* Simple render for hand-written cases: asserts the status and returns the text (static). */
static const char *r1(const char *tmpl, enum llmgpu_status want, struct tu_log *log) {
    static char buf[4096];
    static const struct llmgpu_chat_message msgs[] = {{"system", "sys"}, {"user", "hi"}, {"assistant", "yo"}};
    char *out = NULL;
    size_t len = 0;
    enum llmgpu_status st = render(tmpl, "<s>", "</s>", msgs, 3, 0, log, &out, &len);
    ck_assert_msg(st == want, "template %s: status %d, want %d", tmpl, st, want);
    buf[0] = 0;
    if (out) {
        snprintf(buf, sizeof buf, "%s", out);
        free(out);
    }
    return buf;
}

/* ---- Parity ---- */
struct tpl {
    char name[64];
    char *text;
    const char *bos, *eos;
    struct lg_tokenizer *tok;
    char *bos_buf, *eos_buf; /* copies bos/eos point to, for tokenizer directories */
    int missing;
};

static const char *token_text(const cJSON *v) {
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItem(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A template from the manifest. Tokenizer directories: the template and special tokens
 * of tokenizer_config.json, and for the required ones (not "optional", so small enough
 * for valgrind) the same through the tokenizer loader (lg_tok_chat_template/_token). */
static void load_tpl(const cJSON *t, struct tpl *out) {
    const cJSON *dir = cJSON_GetObjectItem(t, "tokenizer_dir");
    snprintf(out->name, sizeof out->name, "%s", cJSON_GetObjectItem(t, "name")->valuestring);
    if (cJSON_IsString(dir)) {
        char rel[512], path[1024], *cfg_text;
        cJSON *cfg;
        const char *b, *e;
        snprintf(rel, sizeof rel, "%s/tokenizer_config.json", dir->valuestring);
        cfg_text = slurp(rel, NULL);
        if (!cfg_text) {
            fprintf(stderr, "check_chat: SKIP %s: %s absent; run tests/tools/fetch_tokenizers.sh\n",
                    out->name, rel);
            out->missing = 1;
            return;
        }
        cfg = cJSON_Parse(cfg_text);
        free(cfg_text);
        ck_assert_ptr_nonnull(cfg);
        ck_assert_msg(cJSON_IsString(cJSON_GetObjectItem(cfg, "chat_template")), "%s: no chat_template", rel);
        out->text = strdup(cJSON_GetObjectItem(cfg, "chat_template")->valuestring);
        b = token_text(cJSON_GetObjectItem(cfg, "bos_token"));
        e = token_text(cJSON_GetObjectItem(cfg, "eos_token"));
        out->bos = out->bos_buf = b ? strdup(b) : NULL;
        out->eos = out->eos_buf = e ? strdup(e) : NULL;
        cJSON_Delete(cfg);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(t, "optional"))) {
            const char *tb, *te;
            tu_data_path(dir->valuestring, path, sizeof path);
            ck_assert_int_eq(lg_tok_load_dir(NULL, NULL, path, &out->tok), LLMGPU_OK);
            ck_assert_str_eq(lg_tok_chat_template(out->tok), out->text);
            tb = lg_tok_chat_token(out->tok, 0);
            te = lg_tok_chat_token(out->tok, 1);
            ck_assert_msg((!tb && !out->bos) || (tb && out->bos && !strcmp(tb, out->bos)), "%s bos", out->name);
            ck_assert_msg((!te && !out->eos) || (te && out->eos && !strcmp(te, out->eos)), "%s eos", out->name);
        }
    } else {
        const cJSON *b = cJSON_GetObjectItem(t, "bos_token"), *e = cJSON_GetObjectItem(t, "eos_token");
        out->text = slurp(cJSON_GetObjectItem(t, "path")->valuestring, NULL);
        ck_assert_msg(out->text != NULL, "template %s missing", out->name);
        out->bos = cJSON_IsString(b) ? b->valuestring : NULL;
        out->eos = cJSON_IsString(e) ? e->valuestring : NULL;
    }
}

static void report_diff(const char *what, const char *got, size_t glen, const char *want) {
    size_t i = 0, wlen = strlen(want);
    while (i < glen && i < wlen && got[i] == want[i])
        i++;
    fprintf(stderr, "check_chat: MISMATCH %s at byte %zu (got %zu bytes, want %zu)\n  got:  %.*s\n  want: %.*s\n",
            what, i, glen, wlen, (int)LG_MIN(glen - LG_MIN(i, glen), 120), got + LG_MIN(i, glen),
            (int)LG_MIN(wlen - i, 120), want + i);
}

START_TEST(test_parity) {
    cJSON *cases = load_json("fixtures/chat/conversations.json");
    cJSON *exp = load_json("fixtures/chat/expected.json");
    const cJSON *templates = cJSON_GetObjectItem(cases, "templates");
    const cJSON *convs = cJSON_GetObjectItem(cases, "conversations");
    const cJSON *list = cJSON_GetObjectItem(exp, "cases"), *c;
    struct tpl tpls[32];
    int n_tpl = 0, i, failures = 0, checked = 0, skipped = 0;
    memset(tpls, 0, sizeof tpls);
    if (cJSON_IsTrue(cJSON_GetObjectItem(exp, "provisional")))
        fprintf(stderr, "check_chat: note: expected.json is provisional (%s); regenerate with transformers\n",
                cJSON_GetObjectItem(exp, "engine")->valuestring);
    cJSON_ArrayForEach(c, templates) {
        ck_assert_int_lt(n_tpl, 32);
        load_tpl(c, &tpls[n_tpl++]);
    }
    cJSON_ArrayForEach(c, list) {
        const char *tn = cJSON_GetObjectItem(c, "template")->valuestring;
        const char *cn = cJSON_GetObjectItem(c, "conversation")->valuestring;
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        const cJSON *want = cJSON_GetObjectItem(c, "text"), *conv = NULL, *m;
        struct llmgpu_chat_message msgs[32];
        size_t n = 0, len = 0;
        struct tpl *t = NULL;
        struct tu_log log;
        char *out = NULL, what[256];
        enum llmgpu_status st;
        for (i = 0; i < n_tpl; i++)
            if (!strcmp(tpls[i].name, tn))
                t = &tpls[i];
        ck_assert_msg(t != NULL, "expected.json names unknown template %s", tn);
        if (t->missing) {
            skipped++;
            continue;
        }
        cJSON_ArrayForEach(m, convs) {
            if (!strcmp(cJSON_GetObjectItem(m, "name")->valuestring, cn))
                conv = m;
        }
        ck_assert_msg(conv != NULL, "expected.json names unknown conversation %s", cn);
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(conv, "messages")) {
            const cJSON *ct = cJSON_GetObjectItem(m, "content");
            ck_assert_uint_lt(n, 32);
            msgs[n].role = cJSON_GetObjectItem(m, "role")->valuestring;
            msgs[n++].content = cJSON_IsString(ct) ? ct->valuestring : NULL;
        }
        snprintf(what, sizeof what, "%s/%s/%s", tn, cn, gen ? "gen" : "nogen");
        tu_log_clear(&log);
        st = render(t->text, t->bos, t->eos, msgs, n, gen ? LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT : 0,
                    &log, &out, &len);
        checked++;
        if (cJSON_IsString(want)) {
            if (st != LLMGPU_OK) {
                fprintf(stderr, "check_chat: FAIL %s: status %s: %s\n", what, llmgpu_status_string(st), log.text);
                failures++;
            } else if (len != strlen(want->valuestring) || memcmp(out, want->valuestring, len) != 0) {
                report_diff(what, out, len, want->valuestring);
                failures++;
            }
        } else {
            const char *msg = cJSON_GetObjectItem(c, "message")->valuestring;
            if (st != LLMGPU_ERR_INVALID_ARGUMENT) {
                fprintf(stderr, "check_chat: FAIL %s: want an error (%s), got status %s\n", what, msg,
                        llmgpu_status_string(st));
                failures++;
            } else if (!strcmp(cJSON_GetObjectItem(c, "error")->valuestring, "TemplateError") &&
                       !strstr(log.text, msg)) {
                fprintf(stderr, "check_chat: FAIL %s: log lacks the raise_exception message: %s\n", what,
                        log.text);
                failures++;
            }
        }
        free(out);
    }
    fprintf(stderr, "check_chat: parity: %d cases checked, %d skipped, %d failed\n", checked, skipped, failures);
    ck_assert_int_eq(failures, 0);
    for (i = 0; i < n_tpl; i++) {
        free(tpls[i].text);
        free(tpls[i].bos_buf);
        free(tpls[i].eos_buf);
        lg_tok_free(tpls[i].tok);
    }
    cJSON_Delete(cases);
    cJSON_Delete(exp);
}
END_TEST

/* ---- Core ---- */
START_TEST(test_two_call) {
    static const struct llmgpu_chat_message msgs[] = {{"user", "hi"}};
    const char *tmpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
    char buf[64];
    size_t len = 0;
    ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, msgs, 1, 0, NULL, NULL, &len), LLMGPU_OK);
    ck_assert_uint_eq(len, 8);
    len = 3;
    memset(buf, 'Z', sizeof buf);
    ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, msgs, 1, 0, NULL, buf, &len),
                     LLMGPU_ERR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 8);
    ck_assert_int_eq(buf[0], 'Z');
    len = sizeof buf;
    ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, msgs, 1, 0, NULL, buf, &len), LLMGPU_OK);
    ck_assert_uint_eq(len, 8);
    ck_assert_int_eq(memcmp(buf, "<user>hi", 8), 0);
    ck_assert_int_eq(buf[8], 'Z'); /* no NUL written */
    /* arguments */
    ck_assert_int_eq(lg_chat_render(NULL, NULL, NULL, NULL, NULL, msgs, 1, 0, NULL, NULL, &len),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, msgs, 1, 0, NULL, NULL, NULL),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, NULL, 1, 0, NULL, NULL, &len),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, msgs, 1, 2, NULL, NULL, &len),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    {
        struct llmgpu_chat_message bad = {NULL, "x"};
        ck_assert_int_eq(lg_chat_render(NULL, NULL, tmpl, NULL, NULL, &bad, 1, 0, NULL, NULL, &len),
                         LLMGPU_ERR_INVALID_ARGUMENT);
    }
    ck_assert_int_eq(llmgpu_chat_apply_template(NULL, msgs, 1, 0, NULL, &len), LLMGPU_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_semantics) {
    /* variables the renderer provides, and ones it leaves undefined */
    ck_assert_str_eq(r1("{{ bos_token }}|{{ eos_token }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}",
                        LLMGPU_OK, NULL), "<s>|</s>|None|None|False");
    ck_assert_str_eq(r1("{{ enable_thinking is defined }}{{ date_string is defined }}", LLMGPU_OK, NULL),
                     "FalseFalse");
    ck_assert_str_eq(r1("{{ strftime_now('%Y-%m-%d %d %b %Y') }}", LLMGPU_OK, NULL), "2026-01-15 15 Jan 2026");
    /* content NULL is None */
    {
        static const struct llmgpu_chat_message m[] = {{"assistant", NULL}};
        char *out;
        size_t len;
        ck_assert_int_eq(render("{{ messages[0].content is none }}", NULL, NULL, m, 1, 0, NULL, &out, &len),
                         LLMGPU_OK);
        ck_assert_str_eq(out, "True");
        free(out);
    }
    /* scoping: a set inside a loop does not leak, namespace attributes do */
    ck_assert_str_eq(r1("{% set x = 1 %}{% for m in messages %}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}",
                        LLMGPU_OK, NULL), "2221");
    ck_assert_str_eq(r1("{% set ns = namespace(x=1) %}{% for m in messages %}{% set ns.x = ns.x * 2 %}{% endfor %}{{ ns.x }}",
                        LLMGPU_OK, NULL), "8");
    /* one trailing newline dropped, \r\n normalised */
    ck_assert_str_eq(r1("a\r\nb\n", LLMGPU_OK, NULL), "a\nb");
    ck_assert_str_eq(r1("a\n\n", LLMGPU_OK, NULL), "a\n");
}
END_TEST

/* ---- Errors ---- */
START_TEST(test_errors) {
    struct tu_log log;
    tu_log_clear(&log);
    r1("{% for m in messages %}x", LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "endfor") != NULL, "%s", log.text);
    tu_log_clear(&log);
    r1("ok {{ 1 + ", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("ok {{ 'abc }}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{# never closed", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{% if x %}{% endfor %}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{% endif %}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{% break %}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{{ }}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{{ a b }}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{{ 'a' | }}", LLMGPU_ERR_UNSUPPORTED, &log);
    r1("{{ 99999999999999999999 }}", LLMGPU_ERR_UNSUPPORTED, &log);
    /* unknown filter / statement / test / method name the construct and the line */
    tu_log_clear(&log);
    r1("line1\n{{ messages | frobnicate }}", LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "frobnicate") && strstr(log.text, "line 2"), "%s", log.text);
    tu_log_clear(&log);
    r1("\n\n{% include 'x.j2' %}", LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "include") && strstr(log.text, "line 3"), "%s", log.text);
    tu_log_clear(&log);
    r1("{{ 1 is prime }}", LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "prime") != NULL, "%s", log.text);
    tu_log_clear(&log);
    r1("{{ 'x'.zfill(3) }}", LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "zfill") != NULL, "%s", log.text);
    r1("{{ cycler(1, 2) }}", LLMGPU_ERR_UNSUPPORTED, &log);
    /* errors the template raises */
    tu_log_clear(&log);
    r1("a{{ raise_exception('Conversation roles must alternate!') }}", LLMGPU_ERR_INVALID_ARGUMENT, &log);
    ck_assert_msg(strstr(log.text, "Conversation roles must alternate!") != NULL, "%s", log.text);
    r1("{{ nothing.attr }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ nothing + 'x' }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ 'x' + 1 }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ 1 / 0 }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ none|length }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{% for x in 3 %}{% endfor %}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{% set x = 1 %}{% set x.y = 2 %}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ nothing|tojson }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    /* jinja2 behaviours checked against jinja2 itself (see also edge_quirks.jinja) */
    r1("{% if 1 if 0 else 2 %}a{% endif %}", LLMGPU_ERR_UNSUPPORTED, NULL); /* no condexpr in if */
    r1("{{ 1 if 2 if 3 else 4 else 5 }}", LLMGPU_ERR_UNSUPPORTED, NULL);
    r1("{% set z = (1)[::2] %}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);      /* run-time slice */
    r1("{{ [messages|length, (2)[1:]] }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ messages|selectattr('role')|length }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ 1|unique|list }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);         /* lazy: fails when consumed */
    ck_assert_str_eq(r1("{{ 'ok' if 1|unique }}", LLMGPU_OK, NULL), "ok"); /* never consumed */
    r1("{{ nothing|int }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ 0 ** -1 }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ [1] in {'a': 1} }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{{ true|indent }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
}
END_TEST

START_TEST(test_limits) {
    struct tu_log log;
    char *deep = malloc(400000), *p = deep;
    int i;
    small_limits = 1;
    tu_log_clear(&log);
    /* deep nesting of expressions and of blocks: a clean error, no stack overflow */
    p += sprintf(p, "{{ ");
    for (i = 0; i < 50000; i++)
        *p++ = '(';
    *p++ = '1';
    for (i = 0; i < 50000; i++)
        *p++ = ')';
    strcpy(p, " }}");
    r1(deep, LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "nested") != NULL, "%s", log.text);
    p = deep;
    for (i = 0; i < 20000; i++)
        p += sprintf(p, "{%% if 1 %%}");
    strcpy(p, "x");
    r1(deep, LLMGPU_ERR_UNSUPPORTED, NULL);
    p = deep;
    for (i = 0; i < 20000; i++)
        p += sprintf(p, "-");
    strcpy(p, "1");
    {
        char t[200100];
        snprintf(t, sizeof t, "{{ %s }}", deep);
        r1(t, LLMGPU_ERR_UNSUPPORTED, NULL);
    }
    free(deep);
    /* huge loops and runaway recursion stop at the step / depth limits */
    tu_log_clear(&log);
    r1("{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
       LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "steps") != NULL, "%s", log.text);
    r1("{{ range(1000000000) }}", LLMGPU_ERR_INVALID_ARGUMENT, NULL);
    r1("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
       LLMGPU_ERR_UNSUPPORTED, NULL); /* memory or steps, whichever comes first */
    r1("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", LLMGPU_ERR_UNSUPPORTED, NULL);
    /* memory: doubling a string runs into the arena limit */
    tu_log_clear(&log);
    r1("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
       LLMGPU_ERR_UNSUPPORTED, &log);
    ck_assert_msg(strstr(log.text, "memory") != NULL, "%s", log.text);
    r1("{{ 'x' * 1000000000000 }}", LLMGPU_ERR_UNSUPPORTED, NULL);
    /* long strings: searches are linear, repeated scans are charged to the step budget */
    ck_assert_str_eq(r1("{% set a = 'a' * 400000 %}{% set b = 'a' * 200000 ~ 'b' %}"
                        "{{ b in a }} {{ a.count(b) }} {{ a.find(b) }} {{ (a ~ b).rfind(b) }} "
                        "{{ a.replace(b, 'x')|length }} {{ (a ~ b).split(b)|length }} "
                        "{{ (b ~ a).rsplit(b, 1)|length }} {{ (a ~ 'x').strip('a')|length }}",
                        LLMGPU_OK, NULL),
                     "False 0 -1 400000 400000 2 2 1");
    r1("{% set s = '\u00e9' * 1000000 %}{% for i in range(100000) %}{{ s[i] }}{% endfor %}",
       LLMGPU_ERR_UNSUPPORTED, NULL);
    r1("{% set ns = namespace(x=[], y=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}"
       "{% set ns.y = [ns.y] %}{% endfor %}{{ ns.x == ns.x }}{{ ns.x == ns.y }}{{ ns.x < ns.y }}",
       LLMGPU_ERR_UNSUPPORTED, NULL);
    r1("{{ 9223372036854775807 + 1 }}", LLMGPU_ERR_UNSUPPORTED, NULL);
    small_limits = 0;
}
END_TEST

START_TEST(test_alloc_failures) {
    /* fail the Nth allocation for every N until a render needs no more: never a leak or a
     * crash, and the status is LLMGPU_ERR_OUT_OF_HOST_MEMORY */
    static const struct llmgpu_chat_message msgs[] = {{"system", "s"}, {"user", "u"}};
    char *tmpl = slurp("fixtures/chat/templates/qwen25.jinja", NULL);
    int64_t n;
    ck_assert_ptr_nonnull(tmpl);
    for (n = 1;; n++) {
        struct lg_alloc a = {0};
        size_t len = 0;
        enum llmgpu_status st;
        a.fail_after = n;
        st = lg_chat_render(&a, NULL, tmpl, NULL, "</s>", msgs, 2, 0, NULL, NULL, &len);
        if (st == LLMGPU_OK)
            break;
        ck_assert_int_eq(st, LLMGPU_ERR_OUT_OF_HOST_MEMORY);
        ck_assert_int_lt(n, 1000);
    }
    free(tmpl);
}
END_TEST

/* ---- Model: the public entry point on a vocab-only tiny model (a Vulkan context) ---- */
static struct tu_log glog;
static struct llmgpu_context *g_ctx;
static void gpu_setup(void) {
    tu_log_clear(&glog);
    g_ctx = tu_context(&glog, NULL);
}
static void gpu_teardown(void) {
    tu_context_free(g_ctx);
}

static char *apply(struct llmgpu_model *m, const struct llmgpu_chat_message *msgs, size_t n,
                   uint32_t flags, enum llmgpu_status *st) {
    size_t len = 0, len2;
    char *out;
    *st = llmgpu_chat_apply_template(m, msgs, n, flags, NULL, &len);
    if (*st != LLMGPU_OK)
        return NULL;
    out = malloc(len + 1);
    ck_assert_ptr_nonnull(out);
    len2 = len;
    ck_assert_int_eq(llmgpu_chat_apply_template(m, msgs, n, flags, out, &len2), LLMGPU_OK);
    ck_assert_uint_eq(len2, len);
    out[len] = 0;
    return out;
}

START_TEST(test_model_api) {
    static const struct llmgpu_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
    struct llmgpu_model_params mp;
    struct llmgpu_model *m = NULL;
    enum llmgpu_status st;
    char dir[1024], *out;
    ck_assert_int_eq(lgt_mkmodel("--arch llama --dtype f32 --layers 1 --hidden 32 --heads 4 "
                                 "--kv-heads 2 --ff 64 --vocab 300 --ctx 64 --seed 3",
                                 dir, sizeof dir), 0);
    llmgpu_model_params_init(&mp);
    mp.flags = LLMGPU_MODEL_FLAG_VOCAB_ONLY;
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_OK);
    /* tokenizer_config.json's template with its bos/eos strings */
    out = apply(m, msgs, 2, LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT, &st);
    ck_assert_int_eq(st, LLMGPU_OK);
    ck_assert_str_eq(out, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
    free(out);
    out = apply(m, msgs + 1, 1, 0, &st);
    ck_assert_str_eq(out, "<|user|>\nHi</s>\n");
    free(out);
    ck_assert_int_eq(llmgpu_chat_apply_template(m, msgs, 2, 0x80, NULL, &(size_t){0}),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_model_free(m);
    /* chat_template.jinja beside a tokenizer_config.json without chat_template */
    ck_assert_int_eq(lgt_replace(dir, "tokenizer_config.json", "\"chat_template\"", "\"unused_template\""), 0);
    {
        static const char tmpl[] = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}"
                                   "{{ raise_exception('no system role here') }}{% endif %}"
                                   "[{{ m.role }}]{{ m.content }}{% endfor %}\n";
        ck_assert_int_eq(lgt_write(dir, "chat_template.jinja", tmpl, sizeof tmpl - 1), 0);
    }
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_OK);
    out = apply(m, msgs + 1, 1, 0, &st);
    ck_assert_str_eq(out, "<s>[user]Hi");
    free(out);
    tu_log_clear(&glog);
    ck_assert_ptr_null(apply(m, msgs, 2, 0, &st));
    ck_assert_int_eq(st, LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(glog.text, "no system role here") != NULL, "%s", glog.text);
    llmgpu_model_free(m);
    /* no template at all */
    ck_assert_int_eq(remove(strcat(dir, "/chat_template.jinja")), 0);
    dir[strlen(dir) - strlen("/chat_template.jinja")] = 0;
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_OK);
    tu_log_clear(&glog);
    ck_assert_ptr_null(apply(m, msgs, 2, 0, &st));
    ck_assert_int_eq(st, LLMGPU_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(glog.text, "no chat template") != NULL, "%s", glog.text);
    llmgpu_model_free(m);
}
END_TEST

Suite *chat_suite(void) {
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("Parity");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parity);
    suite_add_tcase(s, tc);
    tc = tcase_create("Core");
    tcase_add_test(tc, test_two_call);
    tcase_add_test(tc, test_semantics);
    suite_add_tcase(s, tc);
    tc = tcase_create("Errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);
    tc = tcase_create("Model");
    tcase_set_tags(tc, "gpu");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, gpu_setup, gpu_teardown);
    tcase_add_test(tc, test_model_api);
    suite_add_tcase(s, tc);
    return s;
}
