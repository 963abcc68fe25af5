/*
 * jinja_eval.c - the Jinja evaluator (jinja.h): the render arena, error exit, variable
 * scopes and the execution of statements and expressions.
 *
 * Scopes follow Jinja2: {% set %} assigns in the innermost scope; every iteration of a
 * for loop is a fresh scope (so assignments in a loop body vanish after it and do not
 * carry to the next iteration, which is why templates use namespace()); if blocks add no
 * scope; a macro call runs in a scope whose parent is the one the macro was defined in
 * (a closure, late-binding like Python's).
 * Every node visited costs one step and recursion is bounded, so a template cannot run
 * for ever or overflow the C stack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/jinja.h"

/* ---- arena ---- */
struct jchunk {
    struct jchunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_MIN (64u * 1024u)

void *lg_jinja_alloc(struct jctx *c, size_t size) {
    struct jarena *ar = &c->ar;
    struct jchunk *h = ar->head;
    void *p;
    size = LG_ALIGN_UP(size ? size : 1, 16);
    if (size > SIZE_MAX / 2)
        lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "template needs more memory than allowed");
    if (!h || h->size - h->used < size) {
        size_t body = LG_MAX(size, (size_t)CHUNK_MIN), total = sizeof *h + body;
        if (ar->used + total > ar->cap)
            lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED,
                          "template needs more than %zu bytes of memory (limit)", ar->cap);
        h = lg_calloc(ar->a, 1, total);
        if (!h)
            lg_jinja_fail(c, LLMGPU_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        h->size = body;
        ar->used += total;
        /* a big block goes behind the current head so the head's free space stays usable */
        if (ar->head && size > CHUNK_MIN) {
            h->next = ar->head->next;
            ar->head->next = h;
        } else {
            h->next = ar->head;
            ar->head = h;
        }
    }
    p = h->data + h->used;
    h->used += size;
    return p;
}

char *lg_jinja_strdup(struct jctx *c, const char *s, size_t n) {
    char *p = lg_jinja_alloc(c, n + 1);
    if (n)
        memcpy(p, s, n);
    return p;
}

void lg_jinja_arena_free(struct jarena *ar) {
    struct jchunk *h = ar->head;
    while (h) {
        struct jchunk *next = h->next;
        lg_free(ar->a, h);
        h = next;
    }
    ar->head = NULL;
    ar->used = 0;
}

void lg_jinja_default_limits(struct jlimits *lim) {
    lim->max_steps = 5u * 1000u * 1000u;
    lim->max_depth = 256;
    lim->max_bytes = (size_t)256 << 20;
}

void lg_jinja_fail(struct jctx *c, enum llmgpu_status st, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    if (c->const_mode)
        longjmp(*c->const_jb, 1); /* not a constant after all: evaluate at run time */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg_err(c->log, "chat template, line %d: %s", c->line, msg);
    c->st = st;
    longjmp(c->jb, 1);
}

/* ---- scopes ---- */
struct jframe {
    struct jframe *parent;
    struct jdict vars;
};

static struct jframe *push_frame(struct jctx *c, struct jframe *parent) {
    struct jframe *f = lg_jinja_alloc(c, sizeof *f);
    f->parent = parent;
    return f;
}

static struct jv lookup(struct jctx *c, const char *name, size_t n) {
    struct jframe *f;
    for (f = c->cur; f; f = f->parent) {
        struct jv *v = lg_jdict_get(&f->vars, name, n);
        if (v)
            return *v;
    }
    return lg_jv_undef(name, n);
}

static void assign(struct jctx *c, const char *name, size_t n, struct jv v) {
    lg_jdict_set(c, &c->cur->vars, lg_jv_str(name, n), v);
}

/* ---- expressions ---- */
static struct jv eval(struct jctx *c, struct jnode *nd);
static void exec_body(struct jctx *c, struct jnode *const *body, size_t n);

static void step(struct jctx *c, const struct jnode *nd) {
    c->line = nd->line;
    if (++c->steps > c->lim.max_steps)
        lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "template takes more than %llu steps (limit)",
                      (unsigned long long)c->lim.max_steps);
}

void lg_jinja_work(struct jctx *c, uint64_t steps) {
    c->steps += steps;
    if (c->steps > c->lim.max_steps)
        lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "template takes more than %llu steps (limit)",
                      (unsigned long long)c->lim.max_steps);
}

static void enter(struct jctx *c) {
    if (++c->depth > c->lim.max_depth)
        lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "template recursion deeper than %u (limit)",
                      c->lim.max_depth);
}

/* Evaluate a node's arguments (positional then keyword) into a fresh array. */
static struct jarg *eval_args(struct jctx *c, const struct jnode *nd, size_t *n_out) {
    size_t n = nd->nargs + nd->nkw, i;
    struct jarg *args = lg_jinja_alloc(c, (n ? n : 1) * sizeof *args);
    for (i = 0; i < nd->nargs; i++)
        args[i].v = eval(c, nd->args[i]);
    for (i = 0; i < nd->nkw; i++) {
        args[nd->nargs + i].name = nd->kw[i].name;
        args[nd->nargs + i].nlen = nd->kw[i].nlen;
        args[nd->nargs + i].v = eval(c, nd->kw[i].val);
    }
    *n_out = n;
    return args;
}

static struct jv call_macro(struct jctx *c, const struct jmacro *mc, const struct jarg *args,
                            size_t nargs) {
    const struct jnode *m = mc->m;
    struct jframe *saved = c->cur;
    struct jbuf *saved_out = c->out, buf = {0};
    size_t i, k, npos = 0;
    int saved_ctrl = c->ctrl;
    enter(c);
    c->cur = push_frame(c, mc->env);
    for (i = 0; i < nargs; i++) {
        if (args[i].name) {
            for (k = 0; k < m->nargs; k++)
                if (m->args[k]->n == args[i].nlen && !memcmp(m->args[k]->s, args[i].name, args[i].nlen))
                    break;
            if (k == m->nargs)
                lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "macro '%.*s' takes no keyword argument '%.*s'",
                              (int)m->n, m->s, (int)LG_MIN(args[i].nlen, 64), args[i].name);
            assign(c, args[i].name, args[i].nlen, args[i].v);
        } else {
            if (npos >= m->nargs)
                lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "macro '%.*s' takes not more than %zu arguments",
                              (int)m->n, m->s, m->nargs);
            assign(c, m->args[npos]->s, m->args[npos]->n, args[i].v);
            npos++;
        }
    }
    for (k = 0; k < m->nargs; k++) {
        const struct jnode *prm = m->args[k];
        if (!lg_jdict_get(&c->cur->vars, prm->s, prm->n))
            assign(c, prm->s, prm->n, prm->a ? eval(c, prm->a) : lg_jv_undef(prm->s, prm->n));
    }
    c->out = &buf;
    c->ctrl = 0;
    exec_body(c, m->body, m->nbody);
    c->out = saved_out;
    c->cur = saved;
    c->ctrl = saved_ctrl;
    c->depth--;
    return lg_jv_str(buf.p ? buf.p : "", buf.n);
}

static struct jv call(struct jctx *c, const struct jnode *nd) {
    struct jnode *callee = nd->a;
    struct jarg *args;
    size_t nargs;
    struct jv f;
    if (callee->k == JN_GETATTR) {
        struct jv obj = eval(c, callee->a);
        int method = obj.t == JT_STR || obj.t == JT_LOOP || obj.t == JT_UNDEF;
        if (obj.t == JT_DICT || obj.t == JT_NS) {
            static const char *const names[] = {"items", "keys", "values", "get"};
            size_t i;
            for (i = 0; i < LG_ARRAY_LEN(names); i++)
                if (callee->n == strlen(names[i]) && !memcmp(callee->s, names[i], callee->n))
                    method = 1;
        }
        if (method) {
            args = eval_args(c, nd, &nargs);
            c->line = nd->line;
            return lg_jinja_method(c, &obj, callee->s, callee->n, args, nargs);
        }
        f = lg_jv_getattr(c, &obj, callee->s, callee->n);
        if (f.t == JT_UNDEF && obj.t != JT_DICT && obj.t != JT_NS)
            lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "unsupported method '%.*s' of a %s",
                          (int)LG_MIN(callee->n, 64), callee->s, lg_jv_typename(&obj));
    } else {
        f = eval(c, callee);
    }
    args = eval_args(c, nd, &nargs);
    c->line = nd->line;
    if (f.t == JT_FUNC)
        return lg_jinja_call_func(c, (int)f.u.i, args, nargs);
    if (f.t == JT_MACRO)
        return call_macro(c, f.u.mc, args, nargs);
    if (f.t == JT_UNDEF) {
        if (callee->k == JN_NAME)
            lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "unsupported function '%.*s'",
                          (int)LG_MIN(callee->n, 64), callee->s);
        lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "an undefined value is not callable");
    }
    lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "'%s' object is not callable", lg_jv_typename(&f));
}

static struct jv apply_filter(struct jctx *c, const struct jnode *nd, struct jv v) {
    struct jarg *args;
    size_t nargs;
    args = eval_args(c, nd, &nargs);
    c->line = nd->line;
    return lg_jinja_filter(c, nd->s, nd->n, &v, args, nargs);
}

static struct jv eval_node(struct jctx *c, const struct jnode *nd);

/* Python's has_safe_repr(): what jinja2's optimizer accepts as a folded constant. */
static int safe_const(const struct jv *v, int depth) {
    size_t i;
    if (depth > 64)
        return 0;
    switch (v->t) {
    case JT_NONE:
    case JT_BOOL:
    case JT_INT:
    case JT_FLOAT:
    case JT_STR: return 1;
    case JT_LIST:
        if (v->tuple == JV_GEN)
            return 0;
        for (i = 0; i < v->u.l->n; i++)
            if (!safe_const(&v->u.l->v[i], depth + 1))
                return 0;
        return 1;
    case JT_DICT:
        for (i = 0; i < v->u.d->n; i++)
            if (!safe_const(&v->u.d->k[i], depth + 1) || !safe_const(&v->u.d->v[i], depth + 1))
                return 0;
        return 1;
    default: return 0;
    }
}

/* jinja2 folds constant expressions at compile time (the optimizer, and {{ }} roots through
 * nodes' as_const): evaluation that touches no variable, call or context filter. It differs
 * from run time in one way: a slice goes through environment.getitem, where a failure is
 * undefined instead of an error. So every expression is first tried that way, once per
 * render (the result is static); an error, a variable, or (except at a {{ }} root) a result
 * that is no plain constant makes it an ordinary run-time expression. */
static void try_fold(struct jctx *c, struct jnode *nd) {
    jmp_buf jb, *saved = c->const_jb;
    uint32_t depth = c->depth;
    nd->cstate = 2;
    c->const_mode = 1;
    c->const_jb = &jb;
    if (setjmp(jb) == 0) {
        struct jv v = eval_node(c, nd);
        if (nd->cflag == 2 || safe_const(&v, 0)) {
            nd->cstate = 1;
            nd->cval = v;
        }
    }
    c->const_mode = 0;
    c->const_jb = saved;
    c->depth = depth;
}

static struct jv eval(struct jctx *c, struct jnode *nd) {
    if (c->const_mode || nd->k < JN_LIT)
        return eval_node(c, nd);
    if (nd->cstate == 0)
        try_fold(c, nd);
    if (nd->cstate == 1) {
        step(c, nd);
        return nd->cval;
    }
    return eval_node(c, nd);
}

static struct jv eval_node(struct jctx *c, const struct jnode *nd) {
    struct jv a, b, r;
    size_t i;
    step(c, nd);
    enter(c);
    switch (nd->k) {
    case JN_LIT: r = nd->v; break;
    case JN_NAME:
        if (c->const_mode)
            lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "not constant");
        r = lookup(c, nd->s, nd->n);
        break;
    case JN_LIST:
    case JN_TUPLE:
        r = lg_jlist_make(c, nd->nargs);
        r.tuple = nd->k == JN_TUPLE;
        for (i = 0; i < nd->nargs; i++)
            r.u.l->v[i] = eval(c, nd->args[i]);
        break;
    case JN_DICT:
        r.t = JT_DICT;
        r.tuple = 0;
        r.n = 0;
        r.u.d = lg_jdict_new(c, nd->nargs);
        for (i = 0; i < nd->nargs; i++) {
            a = eval(c, nd->args[i]);
            if (a.t == JT_LIST && !a.tuple)
                lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "unhashable type: 'list'");
            if (a.t == JT_DICT || a.t == JT_UNDEF)
                lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "unhashable type: '%s'", lg_jv_typename(&a));
            b = eval(c, nd->body[i]);
            lg_jdict_set(c, r.u.d, a, b);
        }
        break;
    case JN_GETATTR:
        a = eval(c, nd->a);
        c->line = nd->line;
        r = lg_jv_getattr(c, &a, nd->s, nd->n);
        break;
    case JN_GETITEM:
        a = eval(c, nd->a);
        b = eval(c, nd->b);
        c->line = nd->line;
        r = lg_jv_getitem(c, &a, &b);
        break;
    case JN_SLICE: {
        struct jv parts[3];
        a = eval(c, nd->a);
        for (i = 0; i < 3; i++)
            if (nd->args[i])
                parts[i] = eval(c, nd->args[i]);
        c->line = nd->line;
        if (c->const_mode && a.t != JT_UNDEF) {
            /* folded at compile time by jinja2 (environment.getitem): a failing slice is
             * undefined, not an error */
            int ok = (a.t == JT_STR || (a.t == JT_LIST && a.tuple != JV_GEN));
            for (i = 0; i < 3; i++)
                if (nd->args[i] && parts[i].t != JT_INT && parts[i].t != JT_BOOL && parts[i].t != JT_NONE)
                    ok = 0;
            if (nd->args[2] && (parts[2].t == JT_INT || parts[2].t == JT_BOOL) && parts[2].u.i == 0)
                ok = 0;
            if (!ok) {
                r = lg_jv_undef(NULL, 0);
                break;
            }
        }
        r = lg_jv_slice(c, &a, nd->args[0] ? &parts[0] : NULL, nd->args[1] ? &parts[1] : NULL,
                        nd->args[2] ? &parts[2] : NULL);
        break;
    }
    case JN_CALL:
        if (c->const_mode)
            lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "not constant");
        r = call(c, nd);
        break;
    case JN_FILTER:
        /* the filters jinja2 declares pass_context are never folded */
        if (c->const_mode && ((nd->n == 3 && !memcmp(nd->s, "map", 3)) ||
                              (nd->n == 6 && (!memcmp(nd->s, "select", 6) || !memcmp(nd->s, "reject", 6))) ||
                              (nd->n == 10 && (!memcmp(nd->s, "selectattr", 10) ||
                                               !memcmp(nd->s, "rejectattr", 10)))))
            lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "not constant");
        a = eval(c, nd->a);
        r = apply_filter(c, nd, a);
        break;
    case JN_TEST: {
        struct jarg *args;
        size_t nargs;
        a = eval(c, nd->a);
        args = eval_args(c, nd, &nargs);
        c->line = nd->line;
        r = lg_jv_bool(lg_jinja_test(c, nd->s, nd->n, &a, args, nargs) != (nd->op != 0));
        break;
    }
    case JN_BIN:
        a = eval(c, nd->a);
        b = eval(c, nd->b);
        c->line = nd->line;
        r = lg_jv_binop(c, nd->op, &a, &b);
        break;
    case JN_UNARY:
        a = eval(c, nd->a);
        c->line = nd->line;
        if (nd->op == '!') {
            r = lg_jv_bool(!lg_jv_truthy(&a));
        } else if (a.t == JT_INT || a.t == JT_BOOL) {
            if (nd->op == '-' && a.u.i == INT64_MIN)
                lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "integer overflow in unary '-'");
            r = lg_jv_int(nd->op == '-' ? -a.u.i : a.u.i);
        } else if (a.t == JT_FLOAT) {
            r = a;
            if (nd->op == '-')
                r.u.f = -r.u.f;
        } else if (a.t == JT_UNDEF) {
            r = lg_jv_binop(c, JO_SUB, &a, &a); /* fails naming the undefined value */
        } else {
            lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "bad operand type for unary %c: '%s'",
                          nd->op, lg_jv_typename(&a));
        }
        break;
    case JN_AND:
        a = eval(c, nd->a);
        r = lg_jv_truthy(&a) ? eval(c, nd->b) : a;
        break;
    case JN_OR:
        a = eval(c, nd->a);
        r = lg_jv_truthy(&a) ? a : eval(c, nd->b);
        break;
    case JN_COND:
        a = eval(c, nd->a);
        r = lg_jv_truthy(&a) ? eval(c, nd->b) : nd->c ? eval(c, nd->c) : lg_jv_undef(NULL, 0);
        break;
    default: lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "internal: unknown expression node");
    }
    c->depth--;
    return r;
}

/* ---- statements ---- */
static void bind_target(struct jctx *c, const struct jnode *t, struct jv v) {
    size_t i;
    if (t->k == JN_NAME) {
        assign(c, t->s, t->n, v);
        return;
    }
    if (t->k == JN_TUPLE) {
        struct jlist *l = lg_jv_iter(c, &v);
        if (l->n != t->nargs)
            lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "%s values to unpack (expected %zu, got %zu)",
                          l->n > t->nargs ? "too many" : "not enough", t->nargs, l->n);
        for (i = 0; i < t->nargs; i++)
            bind_target(c, t->args[i], l->v[i]);
        return;
    }
    if (t->k == JN_GETATTR) {
        struct jv ns = lookup(c, t->a->s, t->a->n);
        if (ns.t != JT_NS)
            lg_jinja_fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "cannot assign attribute on non-namespace object");
        lg_jdict_set(c, ns.u.d, lg_jv_str(t->s, t->n), v);
        return;
    }
    lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "internal: bad assignment target");
}

static struct jv render_to_string(struct jctx *c, struct jnode *const *body, size_t n) {
    struct jbuf *saved = c->out, buf = {0};
    c->out = &buf;
    exec_body(c, body, n);
    c->out = saved;
    return lg_jv_str(buf.p ? buf.p : "", buf.n);
}

static struct jv apply_chain(struct jctx *c, const struct jnode *f, struct jv v) {
    if (f->a)
        v = apply_chain(c, f->a, v);
    return apply_filter(c, f, v);
}

static void exec_for(struct jctx *c, const struct jnode *nd) {
    struct jv it = eval(c, nd->b);
    struct jlist *items;
    struct jframe *outer = c->cur, *frame;
    struct jloop *lp;
    struct jv loopv = {0};
    size_t i;
    int iterated = 0;
    c->line = nd->line;
    items = lg_jv_iter(c, &it);
    if (nd->c) {
        /* {% for x in xs if cond %}: filter first (loop.length counts what passes) */
        struct jlist *kept = lg_jinja_alloc(c, sizeof *kept);
        kept->v = lg_jinja_alloc(c, (items->n ? items->n : 1) * sizeof *kept->v);
        struct jframe *ff = push_frame(c, outer);
        for (i = 0; i < items->n; i++) {
            struct jv cond;
            step(c, nd);
            ff->vars.n = 0;
            c->cur = ff;
            bind_target(c, nd->a, items->v[i]);
            cond = eval(c, nd->c);
            c->cur = outer;
            if (lg_jv_truthy(&cond))
                kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    lp = lg_jinja_alloc(c, sizeof *lp);
    lp->items = items;
    lp->depth = 1;
    loopv.t = JT_LOOP;
    loopv.u.lp = lp;
    /* one frame, emptied for every iteration (values are copied out of it, never referenced) */
    frame = push_frame(c, outer);
    for (i = 0; i < items->n; i++) {
        step(c, nd);
        lp->i = i;
        frame->vars.n = 0;
        c->cur = frame;
        bind_target(c, nd->a, items->v[i]);
        assign(c, "loop", 4, loopv);
        exec_body(c, nd->body, nd->nbody);
        c->cur = outer;
        /* Jinja sets its "iterated" flag at the end of the body, so an iteration left by
         * break or continue does not count: the else block runs if none completed */
        if (!c->ctrl)
            iterated = 1;
        if (c->ctrl == 1) {
            c->ctrl = 0;
            break;
        }
        c->ctrl = 0;
    }
    if (!iterated)
        exec_body(c, nd->els, nd->nels);
}

static void exec_body(struct jctx *c, struct jnode *const *body, size_t n) {
    size_t i;
    enter(c);
    for (i = 0; i < n && !c->ctrl; i++) {
        const struct jnode *nd = body[i];
        struct jv v;
        step(c, nd);
        switch (nd->k) {
        case JN_TEXT: lg_jbuf_put(c, c->out, nd->s, nd->n); break;
        case JN_OUTPUT:
            v = eval(c, nd->a);
            lg_jv_write_str(c, c->out, &v);
            break;
        case JN_IF:
            v = eval(c, nd->a);
            if (lg_jv_truthy(&v))
                exec_body(c, nd->body, nd->nbody);
            else
                exec_body(c, nd->els, nd->nels);
            break;
        case JN_FOR: exec_for(c, nd); break;
        case JN_SET:
            v = nd->b ? eval(c, nd->b) : render_to_string(c, nd->body, nd->nbody);
            c->line = nd->line;
            bind_target(c, nd->a, v);
            break;
        case JN_MACRO:
            {
                struct jmacro *mc = lg_jinja_alloc(c, sizeof *mc);
                mc->m = nd;
                mc->env = c->cur;
                v.t = JT_MACRO;
                v.tuple = 0;
                v.n = 0;
                v.u.mc = mc;
            }
            assign(c, nd->s, nd->n, v);
            break;
        case JN_BREAK: c->ctrl = 1; break;
        case JN_CONTINUE: c->ctrl = 2; break;
        case JN_BLOCK: exec_body(c, nd->body, nd->nbody); break;
        case JN_WITH: {
            /* values from the enclosing scope, then a scope of its own for the body */
            struct jframe *outer = c->cur;
            struct jv *vals = lg_jinja_alloc(c, (nd->nkw ? nd->nkw : 1) * sizeof *vals);
            size_t k;
            for (k = 0; k < nd->nkw; k++)
                vals[k] = eval(c, nd->kw[k].val);
            c->cur = push_frame(c, outer);
            for (k = 0; k < nd->nkw; k++)
                assign(c, nd->kw[k].name, nd->kw[k].nlen, vals[k]);
            exec_body(c, nd->body, nd->nbody);
            c->cur = outer;
            break;
        }
        case JN_FILTERBLOCK:
            v = render_to_string(c, nd->body, nd->nbody);
            v = apply_chain(c, nd->a, v);
            lg_jv_write_str(c, c->out, &v);
            break;
        default: lg_jinja_fail(c, LLMGPU_ERR_UNSUPPORTED, "internal: unknown statement node");
        }
    }
    c->depth--;
}

void lg_jinja_set_global(struct jctx *c, const char *name, struct jv v) {
    if (!c->root)
        c->root = push_frame(c, NULL);
    lg_jdict_set(c, &c->root->vars, lg_jv_str(name, strlen(name)), v);
}

void lg_jinja_render(struct jctx *c, struct jnode **body, size_t n) {
    if (!c->root)
        c->root = push_frame(c, NULL);
    if (!c->cur)
        c->cur = c->root;
    exec_body(c, body, n);
}
