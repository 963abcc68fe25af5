/*
 * jinja.h - internal interface of the small Jinja interpreter used for chat templates
 * (lib/chat/). It renders a template the way transformers' apply_chat_template does:
 * Jinja2's ImmutableSandboxedEnvironment with trim_blocks=True, lstrip_blocks=True,
 * keep_trailing_newline=False, the loopcontrols extension ({% break %}, {% continue %})
 * and {% generation %}, transformers' tojson filter (ensure_ascii=False) and its globals
 * raise_exception() and strftime_now().
 *
 * Files: jinja_parse.c (lexer and parser: template text -> AST), jinja_eval.c (statements
 * and expressions), jinja_value.c (values, Python str()/repr(), JSON, filters, tests and
 * string/dict methods), chat.c (public entry point).
 *
 * Memory: every allocation of one render (AST, values, output) comes from one arena that
 * is freed as a whole, so errors leave by longjmp() to the render's single exit without
 * leaking. Limits (steps, nesting, arena bytes) bound time and memory on any template.
 */
#ifndef LG_JINJA_H
#define LG_JINJA_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- arena ---- */
struct jchunk;
struct jarena {
    const struct lg_alloc *a;
    struct jchunk *head;
    size_t used, cap; /* bytes taken from a; cap: the limit */
};

/* ---- values ---- */
enum jt {
    JT_UNDEF = 0, /* u.s/n: the name that was looked up (for messages) */
    JT_NONE,
    JT_BOOL,
    JT_INT,
    JT_FLOAT,
    JT_STR, /* u.s, n bytes of UTF-8 (not NUL-terminated) */
    JT_LIST, /* u.l; tuple: 1 a Python tuple, JV_GEN a generator/iterator (lazy filters) */
    JT_DICT, /* u.d, insertion-ordered */
    JT_NS,   /* namespace(): a dict whose attributes may be set */
    JT_LOOP, /* u.lp: the loop variable of a for */
    JT_MACRO, /* u.mc: a macro's AST node and the scope it was defined in */
    JT_FUNC, /* u.i: a global function (enum jfunc) */
};

/* JT_LIST's tuple field: the value came from a lazy Jinja filter (map, select, reverse, ...),
 * which in Python is a generator: always true, no len(), not subscriptable. */
#define JV_GEN 2

struct jlist;
struct jdict;
struct jloop;
struct jnode;
struct jframe;

struct jmacro {
    const struct jnode *m;
    struct jframe *env; /* a macro is a closure over the scope it is defined in */
};

struct jv {
    uint8_t t;
    uint8_t tuple;
    size_t n;
    union {
        int64_t i;
        double f;
        const char *s;
        struct jlist *l;
        struct jdict *d;
        struct jloop *lp;
        const struct jmacro *mc;
    } u;
};

struct jlist {
    size_t n;
    struct jv *v;
};

struct jdict {
    size_t n, cap;
    struct jv *k, *v;
};

struct jloop {
    const struct jlist *items;
    size_t i; /* index0 */
    int depth;
};

enum jfunc {
    JF_RAISE = 1,
    JF_STRFTIME,
    JF_RANGE,
    JF_NAMESPACE,
    JF_DICT,
};

/* ---- AST ---- */
enum jk {
    /* statements */
    JN_TEXT = 1, /* s */
    JN_OUTPUT,   /* a */
    JN_IF,       /* a: condition; body; els */
    JN_FOR,      /* a: target; b: iterable; c: filter or NULL; body; els */
    JN_SET,      /* a: target; b: value, or NULL with body (block set) */
    JN_MACRO,    /* s: name; args: parameters (JN_NAME, default in a); body */
    JN_BREAK,
    JN_CONTINUE,
    JN_BLOCK,    /* body only ({% generation %}) */
    JN_FILTERBLOCK, /* body, filter chain in a (JN_FILTER with a NULL operand) */
    JN_WITH,     /* kw: name = value assignments; body (a scope of its own) */
    /* expressions */
    JN_LIT,      /* v */
    JN_NAME,     /* s */
    JN_LIST,     /* args */
    JN_TUPLE,    /* args */
    JN_DICT,     /* args: keys; body: values (as expressions) */
    JN_GETATTR,  /* a, s */
    JN_GETITEM,  /* a, b */
    JN_SLICE,    /* a; args[0..2]: start, stop, step (NULL when absent) */
    JN_CALL,     /* a: callee; args; kw */
    JN_FILTER,   /* a: operand; s: name; args; kw */
    JN_TEST,     /* a: operand; s: name; args; op: 1 when negated */
    JN_BIN,      /* op; a, b */
    JN_UNARY,    /* op ('-', '+', '!'); a */
    JN_AND,
    JN_OR,
    JN_COND,     /* a: condition; b: then; c: else or NULL */
};

/* binary operators (JN_BIN op) */
enum jop {
    JO_ADD = 1, JO_SUB, JO_MUL, JO_DIV, JO_FLOORDIV, JO_MOD, JO_POW, JO_CONCAT,
    JO_EQ, JO_NE, JO_LT, JO_LE, JO_GT, JO_GE, JO_IN, JO_NOTIN,
};

struct jkw {
    const char *name;
    size_t nlen;
    struct jnode *val;
};

struct jnode {
    uint8_t k, op;
    uint8_t cflag;  /* 2: the expression root of a {{ }} */
    uint8_t cstate; /* constant folding: 0 not tried, 1 folded (cval), 2 not constant */
    int line;
    const char *s;
    size_t n;
    struct jnode *a, *b, *c;
    struct jnode **args;
    size_t nargs;
    struct jkw *kw;
    size_t nkw;
    struct jnode **body;
    size_t nbody;
    struct jnode **els;
    size_t nels;
    struct jv v;
    struct jv cval;
};

/* ---- limits ---- */
struct jlimits {
    uint64_t max_steps;   /* evaluation steps (nodes visited) */
    uint32_t max_depth;   /* parser nesting and evaluator recursion */
    size_t max_bytes;     /* arena: AST, values and output together */
};
/* Defaults for the public entry point: 5M steps, depth 256, 256 MiB. */
void lg_jinja_default_limits(struct jlimits *lim);

/* ---- one render ---- */
struct jframe;
struct jbuf {
    char *p;
    size_t n, cap;
};

struct jctx {
    struct jarena ar;
    const struct lg_log *log;
    struct jlimits lim;
    jmp_buf jb;
    enum llmgpu_status st;
    int line;             /* template line of the node being evaluated */
    uint64_t steps;
    uint32_t depth;
    struct jframe *root, *cur;
    struct jbuf *out;
    int ctrl;             /* 1: break, 2: continue pending */
    int const_mode;       /* evaluating as jinja2's compile-time as_const */
    jmp_buf *const_jb;    /* where a failed constant evaluation leaves to */
    int64_t now;          /* strftime_now time (seconds since the epoch); < 0: the clock */
};

/* Report an error (status st, message logged with the template line) and leave the render. */
_Noreturn void lg_jinja_fail(struct jctx *c, enum llmgpu_status st, const char *fmt, ...)
    LG_PRINTF(3, 4);

void *lg_jinja_alloc(struct jctx *c, size_t size); /* zeroed; fails the render when over */
/* Charge work that is not a node visit (scanning long strings, quadratic filters) to the
 * step budget: units are steps; string scans charge a step per 256 bytes. */
void lg_jinja_work(struct jctx *c, uint64_t steps);
char *lg_jinja_strdup(struct jctx *c, const char *s, size_t n);
void lg_jinja_arena_free(struct jarena *ar);

/* Parse a template; the AST lives in c's arena. Returns the top-level body. */
struct jnode **lg_jinja_parse(struct jctx *c, const char *src, size_t len, size_t *n_body);
/* Define a variable of the template's top level (name is not copied). */
void lg_jinja_set_global(struct jctx *c, const char *name, struct jv v);
/* Render body into c->out. */
void lg_jinja_render(struct jctx *c, struct jnode **body, size_t n);

/* ---- value helpers (jinja_value.c) ---- */
struct jv lg_jv_str(const char *s, size_t n);
struct jv lg_jv_int(int64_t i);
struct jv lg_jv_bool(int b);
struct jv lg_jv_none(void);
struct jv lg_jv_undef(const char *name, size_t n);
int lg_jv_truthy(const struct jv *v);
int lg_jv_eq(const struct jv *a, const struct jv *b);
const char *lg_jv_typename(const struct jv *v);
/* Append Python's str(v) (Jinja's output conversion: undefined gives ""). */
void lg_jv_write_str(struct jctx *c, struct jbuf *b, const struct jv *v);
struct jv lg_jv_to_str(struct jctx *c, const struct jv *v); /* as a string value */
void lg_jbuf_put(struct jctx *c, struct jbuf *b, const char *s, size_t n);
struct jdict *lg_jdict_new(struct jctx *c, size_t cap);
struct jv *lg_jdict_get(const struct jdict *d, const char *key, size_t n);
void lg_jdict_set(struct jctx *c, struct jdict *d, struct jv key, struct jv val);
struct jv lg_jlist_make(struct jctx *c, size_t n); /* n items, all undefined */
/* Iterate: v as a list of items (strings: characters; dicts: keys; undefined: empty). */
struct jlist *lg_jv_iter(struct jctx *c, const struct jv *v);
/* Attribute / item access; a failed lookup gives undefined, a lookup on undefined fails. */
struct jv lg_jv_getattr(struct jctx *c, const struct jv *obj, const char *name, size_t n);
struct jv lg_jv_getitem(struct jctx *c, const struct jv *obj, const struct jv *key);
struct jv lg_jv_slice(struct jctx *c, const struct jv *obj, const struct jv *start,
                      const struct jv *stop, const struct jv *step);
struct jv lg_jv_binop(struct jctx *c, int op, const struct jv *a, const struct jv *b);

/* Named filter / test / method; args[0..nargs) positional, then keyword arguments. */
struct jarg {
    const char *name; /* NULL: positional */
    size_t nlen;
    struct jv v;
};
struct jv lg_jinja_filter(struct jctx *c, const char *name, size_t n, const struct jv *val,
                          const struct jarg *args, size_t nargs);
int lg_jinja_test(struct jctx *c, const char *name, size_t n, const struct jv *val,
                  const struct jarg *args, size_t nargs);
struct jv lg_jinja_method(struct jctx *c, const struct jv *obj, const char *name, size_t n,
                          const struct jarg *args, size_t nargs);
struct jv lg_jinja_call_func(struct jctx *c, int fn, const struct jarg *args, size_t nargs);
/* Python's printf-style str % args (args: a tuple, a mapping or one value). */
struct jv lg_jv_percent(struct jctx *c, const struct jv *fmt, const struct jv *args);

#endif /* LG_JINJA_H */
