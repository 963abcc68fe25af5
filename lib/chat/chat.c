/*
 * chat.c - chat templates: the variables a template sees (lg_chat_render). The public
 * entry point is chat_api.c; the Jinja interpreter itself is jinja_*.c. Depends on nothing
 * but the allocator and the log, so the fuzz target links it alone.
 *
 * Like transformers' render_jinja_template(), the template gets messages (a list of
 * {"role", "content"} dicts), add_generation_prompt, tools=None, documents=None, the
 * special tokens bos_token / eos_token (when the tokenizer has them), and the globals
 * raise_exception(msg), strftime_now(fmt), range, namespace and dict. Variables a
 * template may test with "is defined" (enable_thinking, date_string, ...) stay undefined.
 */
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/jinja.h"

static struct jv func(int fn) {
    struct jv v = {0};
    v.t = JT_FUNC;
    v.u.i = fn;
    return v;
}

static struct jv cstr(const char *s) {
    return lg_jv_str(s, strlen(s));
}

enum llmgpu_status lg_chat_render(const struct lg_alloc *a, const struct lg_log *log,
                                  const char *tmpl, const char *bos, const char *eos,
                                  const struct llmgpu_chat_message *msgs, size_t n_msgs,
                                  uint32_t flags, const struct lg_chat_opts *opts, char *text,
                                  size_t *len_inout) {
    struct jctx *c;
    struct jbuf out = {0};
    enum llmgpu_status st;
    size_t i;
    if (!tmpl || !len_inout || (!msgs && n_msgs) || (flags & ~LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    for (i = 0; i < n_msgs; i++)
        if (!msgs[i].role) {
            lg_err(log, "chat message %zu has no role", i);
            return LLMGPU_ERR_INVALID_ARGUMENT;
        }
    c = lg_calloc(a, 1, sizeof *c);
    if (!c)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    c->ar.a = a;
    c->log = log;
    lg_jinja_default_limits(&c->lim);
    c->now = -1;
    if (opts) {
        if (opts->max_steps)
            c->lim.max_steps = opts->max_steps;
        if (opts->max_depth)
            c->lim.max_depth = opts->max_depth;
        if (opts->max_bytes)
            c->lim.max_bytes = opts->max_bytes;
        if (opts->now)
            c->now = opts->now;
    }
    c->ar.cap = c->lim.max_bytes;
    c->out = &out;
    if (setjmp(c->jb)) {
        st = c->st;
        goto out;
    }
    {
        size_t n_body;
        struct jnode **body = lg_jinja_parse(c, tmpl, strlen(tmpl), &n_body);
        struct jv list = lg_jlist_make(c, n_msgs), none = lg_jv_none();
        for (i = 0; i < n_msgs; i++) {
            struct jv m = {0};
            m.t = JT_DICT;
            m.u.d = lg_jdict_new(c, 2);
            lg_jdict_set(c, m.u.d, cstr("role"), cstr(msgs[i].role));
            lg_jdict_set(c, m.u.d, cstr("content"), msgs[i].content ? cstr(msgs[i].content) : none);
            list.u.l->v[i] = m;
        }
        lg_jinja_set_global(c, "messages", list);
        lg_jinja_set_global(c, "add_generation_prompt",
                            lg_jv_bool((flags & LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT) != 0));
        lg_jinja_set_global(c, "tools", none);
        lg_jinja_set_global(c, "documents", none);
        if (bos)
            lg_jinja_set_global(c, "bos_token", cstr(bos));
        if (eos)
            lg_jinja_set_global(c, "eos_token", cstr(eos));
        lg_jinja_set_global(c, "raise_exception", func(JF_RAISE));
        lg_jinja_set_global(c, "strftime_now", func(JF_STRFTIME));
        lg_jinja_set_global(c, "range", func(JF_RANGE));
        lg_jinja_set_global(c, "namespace", func(JF_NAMESPACE));
        lg_jinja_set_global(c, "dict", func(JF_DICT));
        lg_jinja_render(c, body, n_body);
    }
    st = LLMGPU_OK;
    if (text && *len_inout < out.n)
        st = LLMGPU_ERR_BUFFER_TOO_SMALL;
    else if (text && out.n)
        memcpy(text, out.p, out.n);
    *len_inout = out.n;
out:
    lg_jinja_arena_free(&c->ar);
    lg_free(a, c);
    return st;
}
