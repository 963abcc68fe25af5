/*
 * tok_chat.c - chat templates: renders tokenizer_config.json's Jinja2 chat_template the way
 * transformers' apply_chat_template(tokenize=False) does (jinja2 with trim_blocks and
 * lstrip_blocks, loop controls, the generation tag, raise_exception, strftime_now and a
 * tojson with ensure_ascii=False).
 *
 * A Jinja2 subset: text, {{ }}, {% %}, {# #} with whitespace control; if/elif/else, for
 * (tuple targets, loop.*, else, inline if), set (names and namespace attributes), break,
 * continue, generation; expressions with literals, lists, dicts, attribute/item/slice
 * access, calls, filters, tests, the arithmetic/comparison/logic operators and the
 * conditional expression; the string, list and dict methods and the filters and tests
 * chat templates use. Macros, call blocks, includes and raw blocks are refused with an
 * error naming them. Values live in an arena freed after each rendering; nothing here
 * touches the tokenizer's state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tok_internal.h"

/* ---- arena ---- */
struct blk {
    struct blk *next;
    size_t used, cap;
    max_align_t data[];
};

enum vt { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS };

struct val;
struct list {
    size_t n, cap;
    struct val *v;
};
struct dict;

struct val {
    enum vt t;
    union {
        int b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct list *l;
        struct dict *d;
    } u;
};

struct dent {
    const char *k;
    size_t kn;
    struct val v;
};
struct dict {
    size_t n, cap;
    struct dent *e;
};

/* ---- lexer ---- */
enum tk { T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP, T_EOF };

struct tok {
    enum tk k;
    const char *s;
    size_t n;
    int64_t i;
    double f;
};

/* ---- AST ---- */
enum ek {
    E_LIT,
    E_NAME,
    E_ATTR,
    E_ITEM,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_NOT,
    E_NEG,
    E_BIN,
    E_AND,
    E_OR,
    E_COND,
    E_LIST,
    E_DICT
};

struct expr {
    enum ek k;
    int op;           /* E_BIN: operator code; E_TEST: negated */
    struct val lit;   /* E_LIT */
    const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST */
    size_t namen;
    struct expr *a, *b, *c;
    struct expr **args; /* E_CALL/E_FILTER/E_TEST arguments; E_LIST items; E_DICT keys,values */
    const char **argn;  /* keyword names (NULL: positional) */
    size_t *argnl;
    int nargs;
};

enum nk { N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_BREAK, N_CONT, N_BLOCK };

struct node {
    enum nk k;
    struct node *next;
    const char *s; /* N_TEXT */
    size_t n;
    struct expr *e;      /* N_OUT, N_SET value, N_FOR iterable */
    struct expr *cond;   /* N_FOR inline if */
    struct expr **conds; /* N_IF */
    struct node **bodies;
    int ncond;
    struct node *els;   /* N_IF else, N_FOR else */
    struct node *body;  /* N_FOR, N_BLOCK */
    const char *var[2]; /* N_FOR targets; N_SET name and attribute */
    size_t varn[2];
    int nvar;
};

enum bop {
    B_ADD,
    B_SUB,
    B_MUL,
    B_DIV,
    B_FDIV,
    B_MOD,
    B_POW,
    B_CAT,
    B_EQ,
    B_NE,
    B_LT,
    B_LE,
    B_GT,
    B_GE,
    B_IN,
    B_NOTIN
};

struct scope {
    struct scope *up;
    struct dict *vars;
};

struct cx {
    const struct lg_tokenizer *t;
    struct blk *blocks;
    struct tok *toks;
    size_t ntok, captok, pos;
    struct lg_tok_buf out;
    struct scope *sc;
    int err; /* 0, or an enum llmgpu_status */
    int depth;
    int brk; /* 1: break, 2: continue pending */
    size_t steps;
};

#define CHAT_MAX_DEPTH 200
#define CHAT_MAX_STEPS 50000000u

/* Record the first error and log it; fmt has one %.*s for (a, an). */
#define fail(c, st, fmt, a, an)                                                                    \
    do {                                                                                           \
        if (!(c)->err) {                                                                           \
            (c)->err = (st);                                                                       \
            lg_err(&(c)->t->log, fmt, (int)LG_MIN((size_t)(an), (size_t)200), (a));                \
        }                                                                                          \
    } while (0)

static void *ax(struct cx *c, size_t n) {
    struct blk *b = c->blocks;
    size_t al = LG_ALIGN_UP(n, sizeof(max_align_t));
    void *p;
    if (c->err)
        return NULL;
    if (!b || b->cap - b->used < al) {
        size_t cap = LG_MAX(al, (size_t)64 * 1024);
        b = lg_malloc(c->t->a, sizeof *b + cap);
        if (!b) {
            c->err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            return NULL;
        }
        b->next = c->blocks;
        b->used = 0;
        b->cap = cap;
        c->blocks = b;
    }
    p = (char *)b->data + b->used;
    b->used += al;
    memset(p, 0, n);
    return p;
}

static char *axstr(struct cx *c, const char *s, size_t n) {
    char *p = ax(c, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

/* ---- values ---- */
static struct val vundef(void) {
    struct val v;
    memset(&v, 0, sizeof v);
    return v;
}
static struct val vnone(void) {
    struct val v = vundef();
    v.t = V_NONE;
    return v;
}
static struct val vbool(int b) {
    struct val v = vundef();
    v.t = V_BOOL;
    v.u.b = b != 0;
    return v;
}
static struct val vint(int64_t i) {
    struct val v = vundef();
    v.t = V_INT;
    v.u.i = i;
    return v;
}
static struct val vfloat(double f) {
    struct val v = vundef();
    v.t = V_FLOAT;
    v.u.f = f;
    return v;
}
static struct val vstr(const char *p, size_t n) {
    struct val v = vundef();
    v.t = V_STR;
    v.u.s.p = p ? p : "";
    v.u.s.n = p ? n : 0;
    return v;
}
static struct val vlist(struct cx *c) {
    struct val v = vundef();
    v.t = V_LIST;
    v.u.l = ax(c, sizeof *v.u.l);
    if (!v.u.l)
        v.t = V_UNDEF;
    return v;
}
static struct val vdict(struct cx *c, enum vt t) {
    struct val v = vundef();
    v.t = t;
    v.u.d = ax(c, sizeof *v.u.d);
    if (!v.u.d)
        v.t = V_UNDEF;
    return v;
}

static void lpush(struct cx *c, struct list *l, struct val v) {
    if (!l)
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        struct val *p = ax(c, nc * sizeof *p);
        if (!p)
            return;
        if (l->n)
            memcpy(p, l->v, l->n * sizeof *p);
        l->v = p;
        l->cap = nc;
    }
    l->v[l->n++] = v;
}

static struct val *dget(struct dict *d, const char *k, size_t kn) {
    size_t i;
    for (i = 0; d && i < d->n; i++)
        if (d->e[i].kn == kn && !memcmp(d->e[i].k, k, kn))
            return &d->e[i].v;
    return NULL;
}

static void dset(struct cx *c, struct dict *d, const char *k, size_t kn, struct val v) {
    struct val *p = dget(d, k, kn);
    if (!d)
        return;
    if (p) {
        *p = v;
        return;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        struct dent *e = ax(c, nc * sizeof *e);
        if (!e)
            return;
        if (d->n)
            memcpy(e, d->e, d->n * sizeof *e);
        d->e = e;
        d->cap = nc;
    }
    d->e[d->n].k = k;
    d->e[d->n].kn = kn;
    d->e[d->n].v = v;
    d->n++;
}

static int truthy(struct val v) {
    switch (v.t) {
    case V_UNDEF:
    case V_NONE:
        return 0;
    case V_BOOL:
        return v.u.b;
    case V_INT:
        return v.u.i != 0;
    case V_FLOAT:
        return v.u.f != 0.0;
    case V_STR:
        return v.u.s.n != 0;
    case V_LIST:
        return v.u.l->n != 0;
    case V_DICT:
        return v.u.d->n != 0;
    case V_NS:
        return 1;
    }
    return 0;
}

static int isnum(struct val v) {
    return v.t == V_INT || v.t == V_FLOAT || v.t == V_BOOL;
}
static double numf(struct val v) {
    return v.t == V_FLOAT ? v.u.f : v.t == V_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t numi(struct val v) {
    return v.t == V_FLOAT ? (int64_t)v.u.f : v.t == V_INT ? v.u.i : (int64_t)v.u.b;
}

static int veq(struct val a, struct val b) {
    size_t i;
    if (isnum(a) && isnum(b))
        return numf(a) == numf(b);
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case V_UNDEF:
    case V_NONE:
        return 1;
    case V_STR:
        return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case V_LIST:
        if (a.u.l->n != b.u.l->n)
            return 0;
        for (i = 0; i < a.u.l->n; i++)
            if (!veq(a.u.l->v[i], b.u.l->v[i]))
                return 0;
        return 1;
    default:
        return a.u.d == b.u.d;
    }
}

/* Python str() of a value, appended to b. */
static void json_str(struct lg_tok_buf *b, const char *s, size_t n);
static void vrepr(struct lg_tok_buf *b, struct val v, int top) {
    char num[64];
    size_t i;
    switch (v.t) {
    case V_UNDEF:
        break;
    case V_NONE:
        lg_tok_buf_put(b, "None", 4);
        break;
    case V_BOOL:
        lg_tok_buf_put(b, v.u.b ? "True" : "False", v.u.b ? 4 : 5);
        break;
    case V_INT:
        snprintf(num, sizeof num, "%lld", (long long)v.u.i);
        lg_tok_buf_put(b, num, strlen(num));
        break;
    case V_FLOAT:
        snprintf(num, sizeof num, "%.17g", v.u.f);
        lg_tok_buf_put(b, num, strlen(num));
        if (!strpbrk(num, ".eEn"))
            lg_tok_buf_put(b, ".0", 2); /* Python prints 1.0, not 1 */
        break;
    case V_STR:
        if (top) {
            lg_tok_buf_put(b, v.u.s.p, v.u.s.n);
        } else { /* inside a container: quoted (close to Python's repr) */
            lg_tok_buf_putc(b, '\'');
            lg_tok_buf_put(b, v.u.s.p, v.u.s.n);
            lg_tok_buf_putc(b, '\'');
        }
        break;
    case V_LIST:
        lg_tok_buf_putc(b, '[');
        for (i = 0; i < v.u.l->n; i++) {
            if (i)
                lg_tok_buf_put(b, ", ", 2);
            vrepr(b, v.u.l->v[i], 0);
        }
        lg_tok_buf_putc(b, ']');
        break;
    case V_DICT:
    case V_NS:
        lg_tok_buf_putc(b, '{');
        for (i = 0; i < v.u.d->n; i++) {
            if (i)
                lg_tok_buf_put(b, ", ", 2);
            lg_tok_buf_putc(b, '\'');
            lg_tok_buf_put(b, v.u.d->e[i].k, v.u.d->e[i].kn);
            lg_tok_buf_put(b, "': ", 3);
            vrepr(b, v.u.d->e[i].v, 0);
        }
        lg_tok_buf_putc(b, '}');
        break;
    }
}

/* str(v) as a value in the arena. */
static struct val vtostr(struct cx *c, struct val v) {
    struct lg_tok_buf b;
    struct val r;
    if (v.t == V_STR)
        return v;
    lg_tok_buf_init(&b, c->t->a);
    vrepr(&b, v, 1);
    if (b.oom)
        c->err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    r = vstr(axstr(c, b.p, b.len), b.len);
    lg_tok_buf_free(&b);
    return r;
}

/* json.dumps(v, ensure_ascii=False[, indent]) */
static void json_str(struct lg_tok_buf *b, const char *s, size_t n) {
    size_t i;
    lg_tok_buf_putc(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        switch (ch) {
        case '"':
            lg_tok_buf_put(b, "\\\"", 2);
            break;
        case '\\':
            lg_tok_buf_put(b, "\\\\", 2);
            break;
        case '\n':
            lg_tok_buf_put(b, "\\n", 2);
            break;
        case '\r':
            lg_tok_buf_put(b, "\\r", 2);
            break;
        case '\t':
            lg_tok_buf_put(b, "\\t", 2);
            break;
        case '\b':
            lg_tok_buf_put(b, "\\b", 2);
            break;
        case '\f':
            lg_tok_buf_put(b, "\\f", 2);
            break;
        default:
            if (ch < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                lg_tok_buf_put(b, esc, 6);
            } else {
                lg_tok_buf_putc(b, (char)ch);
            }
        }
    }
    lg_tok_buf_putc(b, '"');
}

static void json_indent(struct lg_tok_buf *b, int indent, int level) {
    int i;
    if (indent < 0)
        return;
    lg_tok_buf_putc(b, '\n');
    for (i = 0; i < indent * level; i++)
        lg_tok_buf_putc(b, ' ');
}

static void vjson(struct lg_tok_buf *b, struct val v, int indent, int level) {
    size_t i;
    switch (v.t) {
    case V_UNDEF:
    case V_NONE:
        lg_tok_buf_put(b, "null", 4);
        break;
    case V_BOOL:
        lg_tok_buf_put(b, v.u.b ? "true" : "false", v.u.b ? 4 : 5);
        break;
    case V_INT:
    case V_FLOAT:
        vrepr(b, v, 1);
        break;
    case V_STR:
        json_str(b, v.u.s.p, v.u.s.n);
        break;
    case V_LIST:
        lg_tok_buf_putc(b, '[');
        for (i = 0; i < v.u.l->n; i++) {
            if (i)
                lg_tok_buf_put(b, indent < 0 ? ", " : ",", indent < 0 ? 2 : 1);
            json_indent(b, indent, level + 1);
            vjson(b, v.u.l->v[i], indent, level + 1);
        }
        if (v.u.l->n)
            json_indent(b, indent, level);
        lg_tok_buf_putc(b, ']');
        break;
    case V_DICT:
    case V_NS:
        lg_tok_buf_putc(b, '{');
        for (i = 0; i < v.u.d->n; i++) {
            if (i)
                lg_tok_buf_put(b, indent < 0 ? ", " : ",", indent < 0 ? 2 : 1);
            json_indent(b, indent, level + 1);
            json_str(b, v.u.d->e[i].k, v.u.d->e[i].kn);
            lg_tok_buf_put(b, ": ", 2);
            vjson(b, v.u.d->e[i].v, indent, level + 1);
        }
        if (v.u.d->n)
            json_indent(b, indent, level);
        lg_tok_buf_putc(b, '}');
        break;
    }
}

/* ---- lexer ---- */
static void tpush(struct cx *c, enum tk k, const char *s, size_t n) {
    struct tok *t;
    if (c->err)
        return;
    if (c->ntok == c->captok) {
        size_t nc = c->captok ? c->captok * 2 : 256;
        struct tok *p = ax(c, nc * sizeof *p);
        if (!p)
            return;
        if (c->ntok)
            memcpy(p, c->toks, c->ntok * sizeof *p);
        c->toks = p;
        c->captok = nc;
    }
    t = &c->toks[c->ntok++];
    memset(t, 0, sizeof *t);
    t->k = k;
    t->s = s;
    t->n = n;
}

static int is_ws(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}
static int is_id(char ch, int first) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
           (!first && ch >= '0' && ch <= '9');
}

/* Lex the inside of a tag from *pos; stops after the closing delimiter. Returns whether the
 * closer had '-' (strip the whitespace after). */
static int lex_tag(struct cx *c, const char *s, size_t len, size_t *pos, int block) {
    size_t i = *pos;
    const char *close = block ? "%}" : "}}";
    while (i < len && !c->err) {
        char ch = s[i];
        if (is_ws(ch)) {
            i++;
            continue;
        }
        if (ch == '-' && i + 3 <= len && !memcmp(s + i + 1, close, 2)) {
            *pos = i + 3;
            tpush(c, block ? T_BEND : T_VEND, s + i, 3);
            return 1;
        }
        if (i + 2 <= len && !memcmp(s + i, close, 2)) {
            *pos = i + 2;
            tpush(c, block ? T_BEND : T_VEND, s + i, 2);
            return 0;
        }
        if (ch == '+' && i + 3 <= len && !memcmp(s + i + 1, close, 2)) { /* "+%}" */
            *pos = i + 3;
            tpush(c, block ? T_BEND : T_VEND, s + i, 3);
            return 0;
        }
        if (is_id(ch, 1)) {
            size_t j = i + 1;
            while (j < len && is_id(s[j], 0))
                j++;
            tpush(c, T_NAME, s + i, j - i);
            i = j;
            continue;
        }
        if (ch >= '0' && ch <= '9') {
            size_t j = i;
            int fl = 0;
            while (j < len && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
                j++;
            if (j + 1 < len && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
                fl = 1;
                j++;
                while (j < len && s[j] >= '0' && s[j] <= '9')
                    j++;
            }
            tpush(c, fl ? T_FLOAT : T_INT, s + i, j - i);
            if (!c->err) {
                char num[64];
                size_t k, w = 0;
                for (k = i; k < j && w + 1 < sizeof num; k++)
                    if (s[k] != '_')
                        num[w++] = s[k];
                num[w] = 0;
                if (fl)
                    c->toks[c->ntok - 1].f = strtod(num, NULL);
                else
                    c->toks[c->ntok - 1].i = strtoll(num, NULL, 10);
            }
            i = j;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            struct lg_tok_buf b;
            size_t j = i + 1;
            lg_tok_buf_init(&b, c->t->a);
            while (j < len && s[j] != ch) {
                if (s[j] == '\\' && j + 1 < len) {
                    char e = s[++j];
                    switch (e) {
                    case 'n':
                        lg_tok_buf_putc(&b, '\n');
                        break;
                    case 't':
                        lg_tok_buf_putc(&b, '\t');
                        break;
                    case 'r':
                        lg_tok_buf_putc(&b, '\r');
                        break;
                    case '\\':
                    case '\'':
                    case '"':
                        lg_tok_buf_putc(&b, e);
                        break;
                    default:
                        lg_tok_buf_putc(&b, '\\');
                        lg_tok_buf_putc(&b, e);
                    }
                    j++;
                    continue;
                }
                lg_tok_buf_putc(&b, s[j++]);
            }
            if (j >= len) {
                lg_tok_buf_free(&b);
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unterminated string%.*s", "", 0);
                return 0;
            }
            if (b.oom)
                c->err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            tpush(c, T_STR, axstr(c, b.p, b.len), b.len);
            lg_tok_buf_free(&b);
            i = j + 1;
            continue;
        }
        {
            static const char *const two[] = {"==", "!=", "<=", ">=", "//", "**"};
            size_t k;
            for (k = 0; k < LG_ARRAY_LEN(two); k++)
                if (i + 2 <= len && !memcmp(s + i, two[k], 2))
                    break;
            if (k < LG_ARRAY_LEN(two)) {
                tpush(c, T_OP, s + i, 2);
                i += 2;
                continue;
            }
            if (strchr("+-*/%~<>=()[]{}.,:|", ch)) {
                tpush(c, T_OP, s + i, 1);
                i++;
                continue;
            }
        }
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unexpected character '%.*s'", s + i, 1);
        return 0;
    }
    fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unterminated tag%.*s", "", 0);
    return 0;
}

/* Split the template into text and tag tokens, applying whitespace control, trim_blocks
 * and lstrip_blocks as transformers' jinja2 environment does. */
static void lex(struct cx *c, const char *s, size_t len) {
    size_t pos = 0;
    int strip_next = 0;
    while (pos < len && !c->err) {
        size_t st = pos, tb, te;
        const char *p;
        int kind = 0; /* 1 var, 2 block, 3 comment */
        int lminus = 0, lplus = 0;
        while ((p = memchr(s + st, '{', len - st)) != NULL) {
            size_t k = (size_t)(p - s);
            if (k + 1 < len && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')) {
                kind = s[k + 1] == '{' ? 1 : s[k + 1] == '%' ? 2 : 3;
                st = k;
                break;
            }
            st = k + 1;
        }
        if (!kind)
            st = len;
        tb = pos;
        te = st;
        if (kind && st + 2 < len) {
            lminus = s[st + 2] == '-';
            lplus = s[st + 2] == '+';
        }
        if (strip_next)
            while (tb < te && is_ws(s[tb]))
                tb++;
        if (lminus) {
            while (te > tb && is_ws(s[te - 1]))
                te--;
        } else if (kind >= 2 && !lplus) {
            /* lstrip_blocks: only blanks between the line start and a block/comment tag */
            size_t lp = te, k;
            int line_start = tb == 0 || s[tb - 1] == '\n';
            while (lp > tb && s[lp - 1] != '\n')
                lp--;
            if (lp > tb || line_start) {
                for (k = lp; k < te && (s[k] == ' ' || s[k] == '\t'); k++)
                    ;
                if (k == te)
                    te = lp;
            }
        }
        if (te > tb)
            tpush(c, T_TEXT, s + tb, te - tb);
        strip_next = 0;
        if (!kind)
            break;
        pos = st + 2 + (lminus || lplus);
        if (kind == 3) {
            const char *e = NULL;
            size_t k;
            for (k = pos; k + 1 < len; k++)
                if (s[k] == '#' && s[k + 1] == '}') {
                    e = s + k;
                    break;
                }
            if (!e) {
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unterminated comment%.*s", "", 0);
                return;
            }
            strip_next = k > pos && s[k - 1] == '-';
            pos = k + 2;
        } else {
            tpush(c, kind == 1 ? T_VBEGIN : T_BBEGIN, s + st, 2);
            strip_next = lex_tag(c, s, len, &pos, kind == 2);
        }
        /* trim_blocks: the first newline after a block or comment tag */
        if (kind >= 2 && !strip_next) {
            if (pos < len && s[pos] == '\n')
                pos++;
            else if (pos + 1 < len && s[pos] == '\r' && s[pos + 1] == '\n')
                pos += 2;
        }
    }
    tpush(c, T_EOF, s + len, 0);
}

/* ---- parser ---- */
static struct tok *peek(struct cx *c) {
    return &c->toks[c->pos < c->ntok ? c->pos : c->ntok - 1];
}
static struct tok *next(struct cx *c) {
    struct tok *t = peek(c);
    if (c->pos < c->ntok - 1)
        c->pos++;
    return t;
}
static int is_op(const struct tok *t, const char *op) {
    return t->k == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}
static int is_name(const struct tok *t, const char *nm) {
    return t->k == T_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n);
}
static int accept_op(struct cx *c, const char *op) {
    if (is_op(peek(c), op)) {
        next(c);
        return 1;
    }
    return 0;
}
static int accept_name(struct cx *c, const char *nm) {
    if (is_name(peek(c), nm)) {
        next(c);
        return 1;
    }
    return 0;
}
static void expect_op(struct cx *c, const char *op) {
    if (!accept_op(c, op))
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expected '%.*s'", op, strlen(op));
}

static struct expr *enew(struct cx *c, enum ek k) {
    struct expr *e = ax(c, sizeof *e);
    if (e)
        e->k = k;
    return e;
}

static struct expr *parse_expr(struct cx *c);

/* ( args ) after the '(' was consumed: positional and name=value arguments */
static void parse_args(struct cx *c, struct expr *e) {
    struct expr *args[32];
    const char *names[32];
    size_t nl[32];
    int n = 0;
    while (!c->err && !accept_op(c, ")")) {
        const char *nm = NULL;
        size_t nn = 0;
        if (n && !accept_op(c, ",")) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expected ',' in arguments%.*s", "",
                 0);
            return;
        }
        if (accept_op(c, ")"))
            break;
        if (peek(c)->k == T_NAME && c->pos + 1 < c->ntok && is_op(&c->toks[c->pos + 1], "=")) {
            nm = next(c)->s;
            nn = c->toks[c->pos - 1].n;
            next(c);
        }
        if (n == 32) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: too many arguments%.*s", "", 0);
            return;
        }
        names[n] = nm;
        nl[n] = nn;
        args[n++] = parse_expr(c);
    }
    e->nargs = n;
    e->args = ax(c, (size_t)(n + 1) * sizeof *e->args);
    e->argn = ax(c, (size_t)(n + 1) * sizeof *e->argn);
    e->argnl = ax(c, (size_t)(n + 1) * sizeof *e->argnl);
    if (e->args && e->argn && e->argnl && n) {
        memcpy(e->args, args, (size_t)n * sizeof *args);
        memcpy(e->argn, names, (size_t)n * sizeof *names);
        memcpy(e->argnl, nl, (size_t)n * sizeof *nl);
    }
}

static struct expr *parse_primary(struct cx *c) {
    struct tok *t = next(c);
    struct expr *e;
    if (c->err)
        return NULL;
    if (++c->depth > CHAT_MAX_DEPTH) {
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expression nested too deep%.*s", "", 0);
        return NULL;
    }
    switch (t->k) {
    case T_STR: {
        struct lg_tok_buf b;
        lg_tok_buf_init(&b, c->t->a);
        lg_tok_buf_put(&b, t->s, t->n);
        while (peek(c)->k == T_STR) { /* adjacent literals concatenate */
            t = next(c);
            lg_tok_buf_put(&b, t->s, t->n);
        }
        e = enew(c, E_LIT);
        if (e)
            e->lit = vstr(axstr(c, b.p, b.len), b.len);
        if (b.oom)
            c->err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        lg_tok_buf_free(&b);
        break;
    }
    case T_INT:
        if ((e = enew(c, E_LIT)))
            e->lit = vint(t->i);
        break;
    case T_FLOAT:
        if ((e = enew(c, E_LIT)))
            e->lit = vfloat(t->f);
        break;
    case T_NAME:
        e = enew(c, E_LIT);
        if (!e)
            break;
        if (is_name(t, "true") || is_name(t, "True"))
            e->lit = vbool(1);
        else if (is_name(t, "false") || is_name(t, "False"))
            e->lit = vbool(0);
        else if (is_name(t, "none") || is_name(t, "None"))
            e->lit = vnone();
        else {
            e->k = E_NAME;
            e->name = t->s;
            e->namen = t->n;
        }
        break;
    case T_OP:
        if (is_op(t, "(")) {
            e = parse_expr(c);
            expect_op(c, ")");
        } else if (is_op(t, "[")) {
            struct expr *items[256];
            int n = 0;
            e = enew(c, E_LIST);
            while (!c->err && !accept_op(c, "]")) {
                if (n && !accept_op(c, ","))
                    expect_op(c, ",");
                if (accept_op(c, "]"))
                    break;
                if (n == 256) {
                    fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: list too long%.*s", "", 0);
                    break;
                }
                items[n++] = parse_expr(c);
            }
            if (e && (e->args = ax(c, (size_t)(n + 1) * sizeof *e->args))) {
                memcpy(e->args, items, (size_t)n * sizeof *items);
                e->nargs = n;
            }
        } else if (is_op(t, "{")) {
            struct expr *items[256];
            int n = 0;
            e = enew(c, E_DICT);
            while (!c->err && !accept_op(c, "}")) {
                if (n && !accept_op(c, ","))
                    expect_op(c, ",");
                if (accept_op(c, "}"))
                    break;
                if (n == 256) {
                    fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: dict too long%.*s", "", 0);
                    break;
                }
                items[n++] = parse_expr(c);
                expect_op(c, ":");
                items[n++] = parse_expr(c);
            }
            if (e && (e->args = ax(c, (size_t)(n + 1) * sizeof *e->args))) {
                memcpy(e->args, items, (size_t)n * sizeof *items);
                e->nargs = n;
            }
        } else {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unexpected '%.*s'", t->s, t->n);
            e = NULL;
        }
        break;
    default:
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unexpected token '%.*s'", t->s, t->n);
        e = NULL;
    }
    c->depth--;
    return e;
}

static struct expr *parse_postfix(struct cx *c, struct expr *e) {
    while (!c->err) {
        if (accept_op(c, ".")) {
            struct tok *t = next(c);
            struct expr *x = enew(c, E_ATTR);
            if (t->k != T_NAME && t->k != T_INT) {
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: bad attribute '%.*s'", t->s,
                     t->n);
                return NULL;
            }
            if (!x)
                return NULL;
            x->a = e;
            x->name = t->s;
            x->namen = t->n;
            e = x;
        } else if (accept_op(c, "[")) {
            struct expr *x = enew(c, E_ITEM), *parts[3] = {NULL, NULL, NULL};
            int k = 0, slice = 0;
            if (!x)
                return NULL;
            for (;;) {
                if (!is_op(peek(c), ":") && !is_op(peek(c), "]"))
                    parts[k] = parse_expr(c);
                if (accept_op(c, ":") && k < 2) {
                    slice = 1;
                    k++;
                    continue;
                }
                break;
            }
            expect_op(c, "]");
            x->k = slice ? E_SLICE : E_ITEM;
            x->a = e;
            x->b = parts[0];
            x->c = parts[1];
            if (slice) { /* the step rides in args[0] */
                x->args = ax(c, sizeof *x->args);
                if (x->args)
                    x->args[0] = parts[2];
            }
            e = x;
        } else if (accept_op(c, "(")) {
            struct expr *x = enew(c, E_CALL);
            if (!x)
                return NULL;
            x->a = e;
            parse_args(c, x);
            e = x;
        } else {
            break;
        }
    }
    return e;
}

static struct expr *parse_filters(struct cx *c, struct expr *e) {
    while (!c->err) {
        if (accept_op(c, "|")) {
            struct tok *t = next(c);
            struct expr *x = enew(c, E_FILTER);
            if (t->k != T_NAME || !x) {
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: bad filter '%.*s'", t->s, t->n);
                return NULL;
            }
            x->a = e;
            x->name = t->s;
            x->namen = t->n;
            if (accept_op(c, "("))
                parse_args(c, x);
            e = x;
        } else if (accept_name(c, "is")) {
            struct expr *x = enew(c, E_TEST);
            struct tok *t;
            if (!x)
                return NULL;
            x->op = accept_name(c, "not");
            t = next(c);
            if (t->k != T_NAME) {
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: bad test '%.*s'", t->s, t->n);
                return NULL;
            }
            x->a = e;
            x->name = t->s;
            x->namen = t->n;
            if (accept_op(c, "("))
                parse_args(c, x);
            e = x;
        } else if (is_op(peek(c), "(") || is_op(peek(c), ".") || is_op(peek(c), "[")) {
            e = parse_postfix(c, e);
        } else {
            break;
        }
    }
    return e;
}

static struct expr *parse_unary(struct cx *c) {
    struct expr *e;
    if (++c->depth > CHAT_MAX_DEPTH) {
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expression nested too deep%.*s", "", 0);
        return NULL;
    }
    if (accept_op(c, "-")) {
        e = enew(c, E_NEG);
        if (e)
            e->a = parse_unary(c);
    } else if (accept_op(c, "+")) {
        e = parse_unary(c);
    } else {
        e = parse_filters(c, parse_postfix(c, parse_primary(c)));
    }
    c->depth--;
    return e;
}

static struct expr *bin(struct cx *c, int op, struct expr *a, struct expr *b) {
    struct expr *e = enew(c, E_BIN);
    if (!e)
        return NULL;
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static struct expr *parse_pow(struct cx *c) {
    struct expr *e = parse_unary(c);
    while (!c->err && accept_op(c, "**"))
        e = bin(c, B_POW, e, parse_unary(c));
    return e;
}
static struct expr *parse_mul(struct cx *c) {
    struct expr *e = parse_pow(c);
    while (!c->err) {
        if (accept_op(c, "*"))
            e = bin(c, B_MUL, e, parse_pow(c));
        else if (accept_op(c, "//"))
            e = bin(c, B_FDIV, e, parse_pow(c));
        else if (accept_op(c, "/"))
            e = bin(c, B_DIV, e, parse_pow(c));
        else if (accept_op(c, "%"))
            e = bin(c, B_MOD, e, parse_pow(c));
        else
            break;
    }
    return e;
}
static struct expr *parse_cat(struct cx *c) {
    struct expr *e = parse_mul(c);
    while (!c->err && accept_op(c, "~"))
        e = bin(c, B_CAT, e, parse_mul(c));
    return e;
}
static struct expr *parse_add(struct cx *c) {
    struct expr *e = parse_cat(c);
    while (!c->err) {
        if (accept_op(c, "+"))
            e = bin(c, B_ADD, e, parse_cat(c));
        else if (accept_op(c, "-"))
            e = bin(c, B_SUB, e, parse_cat(c));
        else
            break;
    }
    return e;
}
static struct expr *parse_cmp(struct cx *c) {
    struct expr *e = parse_add(c);
    while (!c->err) {
        int op;
        if (accept_op(c, "=="))
            op = B_EQ;
        else if (accept_op(c, "!="))
            op = B_NE;
        else if (accept_op(c, "<="))
            op = B_LE;
        else if (accept_op(c, ">="))
            op = B_GE;
        else if (accept_op(c, "<"))
            op = B_LT;
        else if (accept_op(c, ">"))
            op = B_GT;
        else if (accept_name(c, "in"))
            op = B_IN;
        else if (is_name(peek(c), "not") && c->pos + 1 < c->ntok &&
                 is_name(&c->toks[c->pos + 1], "in")) {
            next(c);
            next(c);
            op = B_NOTIN;
        } else
            break;
        e = bin(c, op, e, parse_add(c));
    }
    return e;
}
static struct expr *parse_not(struct cx *c) {
    if (accept_name(c, "not")) {
        struct expr *e = enew(c, E_NOT);
        if (++c->depth > CHAT_MAX_DEPTH) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: nested too deep%.*s", "", 0);
            return NULL;
        }
        if (e)
            e->a = parse_not(c);
        c->depth--;
        return e;
    }
    return parse_cmp(c);
}
static struct expr *parse_and(struct cx *c) {
    struct expr *e = parse_not(c);
    while (!c->err && accept_name(c, "and")) {
        struct expr *x = enew(c, E_AND);
        if (!x)
            return NULL;
        x->a = e;
        x->b = parse_not(c);
        e = x;
    }
    return e;
}
static struct expr *parse_or(struct cx *c) {
    struct expr *e = parse_and(c);
    while (!c->err && accept_name(c, "or")) {
        struct expr *x = enew(c, E_OR);
        if (!x)
            return NULL;
        x->a = e;
        x->b = parse_and(c);
        e = x;
    }
    return e;
}
static struct expr *parse_expr(struct cx *c) {
    struct expr *e = parse_or(c);
    if (!c->err && accept_name(c, "if")) {
        struct expr *x = enew(c, E_COND);
        if (!x)
            return NULL;
        x->a = e;
        x->b = parse_or(c);
        x->c = accept_name(c, "else") ? parse_expr(c) : NULL;
        e = x;
    }
    return e;
}

/* Statements. Stops (without consuming) at a block tag whose keyword is in stop[]. */
static struct node *parse_body(struct cx *c, const char *const *stop, int nstop);

static struct node *nnew(struct cx *c, enum nk k) {
    struct node *n = ax(c, sizeof *n);
    if (n)
        n->k = k;
    return n;
}

static void expect_bend(struct cx *c) {
    if (next(c)->k != T_BEND)
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expected '%%}'%.*s", "", 0);
}

/* At "{%" kw: consume "{% kw %}" */
static void end_tag(struct cx *c, const char *kw) {
    if (next(c)->k != T_BBEGIN || !accept_name(c, kw)) {
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: missing {%% %.*s %%}", kw, strlen(kw));
        return;
    }
    expect_bend(c);
}

static struct node *parse_stmt(struct cx *c) {
    struct tok *kw = next(c);
    struct node *n = NULL;
    if (kw->k != T_NAME) {
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: bad statement '%.*s'", kw->s, kw->n);
        return NULL;
    }
    if (++c->depth > CHAT_MAX_DEPTH) {
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: blocks nested too deep%.*s", "", 0);
        return NULL;
    }
    if (is_name(kw, "if")) {
        static const char *const stops[] = {"elif", "else", "endif"};
        struct expr *conds[64];
        struct node *bodies[64];
        int k = 0;
        n = nnew(c, N_IF);
        conds[k] = parse_expr(c);
        expect_bend(c);
        bodies[k++] = parse_body(c, stops, 3);
        while (!c->err) {
            struct tok *t;
            next(c); /* {% */
            t = next(c);
            if (is_name(t, "elif")) {
                if (k == 64) {
                    fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: too many elif%.*s", "", 0);
                    break;
                }
                conds[k] = parse_expr(c);
                expect_bend(c);
                bodies[k++] = parse_body(c, stops, 3);
            } else if (is_name(t, "else")) {
                expect_bend(c);
                if (n)
                    n->els = parse_body(c, stops + 2, 1);
                end_tag(c, "endif");
                break;
            } else {
                expect_bend(c); /* endif */
                break;
            }
        }
        if (n && !c->err) {
            n->ncond = k;
            n->conds = ax(c, (size_t)k * sizeof *n->conds);
            n->bodies = ax(c, (size_t)k * sizeof *n->bodies);
            if (n->conds && n->bodies) {
                memcpy(n->conds, conds, (size_t)k * sizeof *conds);
                memcpy(n->bodies, bodies, (size_t)k * sizeof *bodies);
            }
        }
    } else if (is_name(kw, "for")) {
        static const char *const stops[] = {"else", "endfor"};
        struct tok *t;
        n = nnew(c, N_FOR);
        if (!n)
            goto out;
        do {
            t = next(c);
            if (t->k != T_NAME || n->nvar == 2) {
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: bad loop target '%.*s'", t->s,
                     t->n);
                goto out;
            }
            n->var[n->nvar] = t->s;
            n->varn[n->nvar++] = t->n;
        } while (accept_op(c, ","));
        if (!accept_name(c, "in")) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expected 'in'%.*s", "", 0);
            goto out;
        }
        n->e = parse_or(c); /* not parse_expr: a trailing "if" filters the loop */
        if (accept_name(c, "if"))
            n->cond = parse_or(c);
        if (accept_name(c, "recursive")) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: recursive loops unsupported%.*s", "",
                 0);
            goto out;
        }
        expect_bend(c);
        n->body = parse_body(c, stops, 2);
        next(c); /* {% */
        t = next(c);
        if (is_name(t, "else")) {
            expect_bend(c);
            n->els = parse_body(c, stops + 1, 1);
            end_tag(c, "endfor");
        } else {
            expect_bend(c);
        }
    } else if (is_name(kw, "set")) {
        struct tok *t = next(c);
        n = nnew(c, N_SET);
        if (!n)
            goto out;
        if (t->k != T_NAME) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: bad set target '%.*s'", t->s, t->n);
            goto out;
        }
        n->var[0] = t->s;
        n->varn[0] = t->n;
        n->nvar = 1;
        if (accept_op(c, ".")) {
            t = next(c);
            n->var[1] = t->s;
            n->varn[1] = t->n;
            n->nvar = 2;
        }
        if (!accept_op(c, "=")) {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER,
                 "chat template: block set / tuple set unsupported%.*s", "", 0);
            goto out;
        }
        n->e = parse_expr(c);
        expect_bend(c);
    } else if (is_name(kw, "break") || is_name(kw, "continue")) {
        n = nnew(c, is_name(kw, "break") ? N_BREAK : N_CONT);
        expect_bend(c);
    } else if (is_name(kw, "generation")) {
        static const char *const stops[] = {"endgeneration"};
        n = nnew(c, N_BLOCK);
        expect_bend(c);
        if (n)
            n->body = parse_body(c, stops, 1);
        end_tag(c, "endgeneration");
    } else {
        fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: '%.*s' blocks are not supported", kw->s,
             kw->n);
    }
out:
    c->depth--;
    return n;
}

static struct node *parse_body(struct cx *c, const char *const *stop, int nstop) {
    struct node *head = NULL, **tail = &head;
    while (!c->err) {
        struct tok *t = peek(c);
        struct node *n = NULL;
        if (t->k == T_EOF) {
            if (nstop)
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: missing {%% %.*s %%}", stop[0],
                     strlen(stop[0]));
            break;
        }
        if (t->k == T_TEXT) {
            next(c);
            n = nnew(c, N_TEXT);
            if (n) {
                n->s = t->s;
                n->n = t->n;
            }
        } else if (t->k == T_VBEGIN) {
            next(c);
            n = nnew(c, N_OUT);
            if (n)
                n->e = parse_expr(c);
            if (next(c)->k != T_VEND)
                fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: expected '}}'%.*s", "", 0);
        } else if (t->k == T_BBEGIN) {
            struct tok *kw = &c->toks[LG_MIN(c->pos + 1, c->ntok - 1)];
            int i;
            for (i = 0; i < nstop; i++)
                if (is_name(kw, stop[i]))
                    return head; /* the caller consumes the closing tag */
            next(c);
            n = parse_stmt(c);
        } else {
            fail(c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unexpected '%.*s'", t->s, t->n);
        }
        if (n) {
            *tail = n;
            tail = &n->next;
        }
    }
    return head;
}

/* ---- evaluation ---- */
static struct val eval(struct cx *c, const struct expr *e);

static struct val *lookup(struct cx *c, const char *nm, size_t n) {
    struct scope *s;
    for (s = c->sc; s; s = s->up) {
        struct val *v = dget(s->vars, nm, n);
        if (v)
            return v;
    }
    return NULL;
}

static int name_is(const char *s, size_t n, const char *lit) {
    return n == strlen(lit) && !memcmp(s, lit, n);
}

static struct val attr(struct cx *c, struct val o, const char *nm, size_t n) {
    (void)c;
    if (o.t == V_DICT || o.t == V_NS) {
        struct val *v = dget(o.u.d, nm, n);
        return v ? *v : vundef();
    }
    return vundef();
}

static size_t *cp_offsets(struct cx *c, struct val s, size_t *count);

static int64_t norm_index(int64_t i, size_t n) {
    return i < 0 ? i + (int64_t)n : i;
}

static struct val item(struct cx *c, struct val o, struct val k) {
    if (o.t == V_LIST && (k.t == V_INT || k.t == V_BOOL)) {
        int64_t i = norm_index(numi(k), o.u.l->n);
        return i >= 0 && (size_t)i < o.u.l->n ? o.u.l->v[i] : vundef();
    }
    if (o.t == V_STR && k.t == V_INT) { /* by code point */
        size_t cnt = 0, *off = cp_offsets(c, o, &cnt);
        int64_t i = norm_index(k.u.i, cnt);
        return off && i >= 0 && (size_t)i < cnt ? vstr(o.u.s.p + off[i], off[i + 1] - off[i])
                                                : vundef();
    }
    if ((o.t == V_DICT || o.t == V_NS) && k.t == V_STR)
        return attr(c, o, k.u.s.p, k.u.s.n);
    return vundef();
}

/* Offsets of the code points of a UTF-8 string (n + 1 entries), in the arena. */
static size_t *cp_offsets(struct cx *c, struct val s, size_t *count) {
    size_t i, k = 0, *o = ax(c, (s.u.s.n + 1) * sizeof *o);
    if (!o)
        return NULL;
    for (i = 0; i < s.u.s.n; i++)
        if (((unsigned char)s.u.s.p[i] & 0xC0) != 0x80)
            o[k++] = i;
    o[k] = s.u.s.n;
    *count = k;
    return o;
}

/* Python slice semantics for lists and strings (strings by code point). */
static struct val slice(struct cx *c, struct val o, struct val a, struct val b, struct val st) {
    int64_t n, step = st.t == V_INT ? st.u.i : 1, lo, hi, i;
    size_t *off = NULL, cnt = 0;
    struct val r;
    if (o.t != V_LIST && o.t != V_STR)
        return vundef();
    if (step == 0) {
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: slice step 0%.*s", "", 0);
        return vundef();
    }
    if (o.t == V_STR) {
        if (!(off = cp_offsets(c, o, &cnt)))
            return vundef();
        n = (int64_t)cnt;
    } else {
        n = (int64_t)o.u.l->n;
    }
    if (step > 0) {
        lo = a.t == V_INT ? norm_index(a.u.i, (size_t)n) : 0;
        hi = b.t == V_INT ? norm_index(b.u.i, (size_t)n) : n;
        lo = LG_MAX(0, LG_MIN(lo, n));
        hi = LG_MAX(0, LG_MIN(hi, n));
    } else {
        lo = a.t == V_INT ? norm_index(a.u.i, (size_t)n) : n - 1;
        hi = b.t == V_INT ? norm_index(b.u.i, (size_t)n) : -1;
        lo = LG_MAX(-1, LG_MIN(lo, n - 1));
        hi = LG_MAX(-1, LG_MIN(hi, n - 1));
    }
    if (o.t == V_STR) {
        struct lg_tok_buf buf;
        if (step == 1 && lo <= hi) /* a plain substring */
            return vstr(o.u.s.p + off[lo], off[hi] - off[lo]);
        lg_tok_buf_init(&buf, c->t->a);
        for (i = lo; step > 0 ? i < hi : i > hi; i += step)
            lg_tok_buf_put(&buf, o.u.s.p + off[i], off[i + 1] - off[i]);
        r = vstr(axstr(c, buf.p, buf.len), buf.len);
        lg_tok_buf_free(&buf);
        return r;
    }
    r = vlist(c);
    for (i = lo; r.t == V_LIST && (step > 0 ? i < hi : i > hi); i += step)
        lpush(c, r.u.l, o.u.l->v[i]);
    return r;
}

static int contains(struct val hay, struct val needle) {
    size_t i;
    if (hay.t == V_STR && needle.t == V_STR) {
        if (!needle.u.s.n)
            return 1;
        return hay.u.s.n >= needle.u.s.n &&
               memmem(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
    }
    if (hay.t == V_LIST) {
        for (i = 0; i < hay.u.l->n; i++)
            if (veq(hay.u.l->v[i], needle))
                return 1;
        return 0;
    }
    if ((hay.t == V_DICT || hay.t == V_NS) && needle.t == V_STR)
        return dget(hay.u.d, needle.u.s.p, needle.u.s.n) != NULL;
    return 0;
}

static struct val concat(struct cx *c, struct val a, struct val b) {
    char *p;
    a = vtostr(c, a);
    b = vtostr(c, b);
    p = ax(c, a.u.s.n + b.u.s.n + 1);
    if (!p)
        return vundef();
    memcpy(p, a.u.s.p, a.u.s.n);
    memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
    return vstr(p, a.u.s.n + b.u.s.n);
}

static int vcmp(struct cx *c, struct val a, struct val b) {
    if (isnum(a) && isnum(b))
        return numf(a) < numf(b) ? -1 : numf(a) > numf(b);
    if (a.t == V_STR && b.t == V_STR) {
        int r = memcmp(a.u.s.p, b.u.s.p, LG_MIN(a.u.s.n, b.u.s.n));
        return r ? r : (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: cannot compare these values%.*s", "", 0);
    return 0;
}

static struct val binop(struct cx *c, int op, struct val a, struct val b) {
    switch (op) {
    case B_ADD:
        if (a.t == V_LIST && b.t == V_LIST) {
            struct val r = vlist(c);
            size_t i;
            for (i = 0; r.t == V_LIST && i < a.u.l->n; i++)
                lpush(c, r.u.l, a.u.l->v[i]);
            for (i = 0; r.t == V_LIST && i < b.u.l->n; i++)
                lpush(c, r.u.l, b.u.l->v[i]);
            return r;
        }
        if (isnum(a) && isnum(b))
            return a.t == V_FLOAT || b.t == V_FLOAT ? vfloat(numf(a) + numf(b))
                                                    : vint(numi(a) + numi(b));
        if ((a.t == V_STR || a.t == V_UNDEF) && (b.t == V_STR || b.t == V_UNDEF))
            return concat(c, a, b);
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: cannot add these values%.*s", "", 0);
        return vundef();
    case B_CAT:
        return concat(c, a, b);
    case B_SUB:
    case B_MUL:
    case B_DIV:
    case B_FDIV:
    case B_MOD:
    case B_POW:
        if (op == B_MUL && a.t == V_STR && b.t == V_INT) { /* "ab" * 3 */
            struct lg_tok_buf buf;
            struct val r;
            int64_t i;
            lg_tok_buf_init(&buf, c->t->a);
            for (i = 0; i < b.u.i && i < 100000; i++)
                lg_tok_buf_put(&buf, a.u.s.p, a.u.s.n);
            r = vstr(axstr(c, buf.p, buf.len), buf.len);
            lg_tok_buf_free(&buf);
            return r;
        }
        if (!isnum(a) || !isnum(b)) {
            fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: arithmetic on a non-number%.*s",
                 "", 0);
            return vundef();
        }
        if (op == B_DIV) {
            if (numf(b) == 0) {
                fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: division by zero%.*s", "", 0);
                return vundef();
            }
            return vfloat(numf(a) / numf(b));
        }
        if (a.t == V_FLOAT || b.t == V_FLOAT) {
            double x = numf(a), y = numf(b);
            if (op == B_SUB)
                return vfloat(x - y);
            if (op == B_MUL)
                return vfloat(x * y);
            fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: float operator unsupported%.*s",
                 "", 0);
            return vundef();
        } else {
            int64_t x = numi(a), y = numi(b), r;
            if (op == B_SUB)
                return vint(x - y);
            if (op == B_MUL)
                return vint(x * y);
            if (op == B_POW) {
                int64_t k;
                for (r = 1, k = 0; k < y && k < 64; k++)
                    r *= x;
                return vint(r);
            }
            if (y == 0) {
                fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: division by zero%.*s", "", 0);
                return vundef();
            }
            r = op == B_FDIV ? x / y : x % y; /* Python floors: fix the sign */
            if (op == B_FDIV && (x % y != 0) && ((x < 0) != (y < 0)))
                r--;
            if (op == B_MOD && r != 0 && ((r < 0) != (y < 0)))
                r += y;
            return vint(r);
        }
    case B_EQ:
        return vbool(veq(a, b));
    case B_NE:
        return vbool(!veq(a, b));
    case B_LT:
        return vbool(vcmp(c, a, b) < 0);
    case B_LE:
        return vbool(vcmp(c, a, b) <= 0);
    case B_GT:
        return vbool(vcmp(c, a, b) > 0);
    case B_GE:
        return vbool(vcmp(c, a, b) >= 0);
    case B_IN:
        return vbool(contains(b, a));
    case B_NOTIN:
        return vbool(!contains(b, a));
    }
    return vundef();
}

/* Arguments of a call: positional i, or keyword nm. */
static struct val arg(struct cx *c, const struct expr *e, int i, const char *nm, int *present) {
    int k, pos = 0;
    for (k = 0; k < e->nargs; k++) {
        if (e->argn[k]) {
            if (nm && name_is(e->argn[k], e->argnl[k], nm)) {
                *present = 1;
                return eval(c, e->args[k]);
            }
        } else if (pos++ == i) {
            *present = 1;
            return eval(c, e->args[k]);
        }
    }
    *present = 0;
    return vundef();
}

static int is_strip_char(char ch, struct val chars) {
    if (chars.t == V_STR)
        return memchr(chars.u.s.p, ch, chars.u.s.n) != NULL;
    return is_ws(ch);
}

static struct val strip(struct val s, struct val chars, int left, int right) {
    size_t b = 0, e;
    if (s.t != V_STR)
        return s;
    e = s.u.s.n;
    while (left && b < e && is_strip_char(s.u.s.p[b], chars))
        b++;
    while (right && e > b && is_strip_char(s.u.s.p[e - 1], chars))
        e--;
    return vstr(s.u.s.p + b, e - b);
}

static struct val case_map(struct cx *c, struct val s, int mode) {
    /* mode 0 lower, 1 upper, 2 capitalize, 3 title (ASCII letters only) */
    char *p;
    size_t i;
    int start = 1;
    if (s.t != V_STR)
        return s;
    p = axstr(c, s.u.s.p, s.u.s.n);
    if (!p)
        return vundef();
    for (i = 0; i < s.u.s.n; i++) {
        char ch = p[i];
        int up = mode == 1 || ((mode == 2 && i == 0) || (mode == 3 && start));
        if (up && ch >= 'a' && ch <= 'z')
            p[i] = (char)(ch - 32);
        else if (!up && mode != 1 && ch >= 'A' && ch <= 'Z')
            p[i] = (char)(ch + 32);
        start = !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'));
    }
    return vstr(p, s.u.s.n);
}

static struct val split(struct cx *c, struct val s, struct val sep, int64_t maxsplit) {
    struct val r = vlist(c);
    size_t i = 0, start = 0;
    int64_t done = 0;
    if (s.t != V_STR || r.t != V_LIST)
        return vundef();
    if (sep.t != V_STR) { /* whitespace split */
        while (i < s.u.s.n) {
            while (i < s.u.s.n && is_ws(s.u.s.p[i]))
                i++;
            if (i >= s.u.s.n)
                break;
            start = i;
            if (maxsplit >= 0 && done >= maxsplit) {
                size_t e = s.u.s.n;
                while (e > start && is_ws(s.u.s.p[e - 1]))
                    e--;
                lpush(c, r.u.l, vstr(s.u.s.p + start, e - start));
                break;
            }
            while (i < s.u.s.n && !is_ws(s.u.s.p[i]))
                i++;
            lpush(c, r.u.l, vstr(s.u.s.p + start, i - start));
            done++;
        }
        return r;
    }
    if (!sep.u.s.n) {
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: empty separator%.*s", "", 0);
        return vundef();
    }
    while (i + sep.u.s.n <= s.u.s.n && (maxsplit < 0 || done < maxsplit)) {
        if (!memcmp(s.u.s.p + i, sep.u.s.p, sep.u.s.n)) {
            lpush(c, r.u.l, vstr(s.u.s.p + start, i - start));
            i += sep.u.s.n;
            start = i;
            done++;
        } else {
            i++;
        }
    }
    lpush(c, r.u.l, vstr(s.u.s.p + start, s.u.s.n - start));
    return r;
}

static struct val replace(struct cx *c, struct val s, struct val a, struct val b) {
    struct lg_tok_buf buf;
    struct val r;
    size_t i = 0;
    if (s.t != V_STR || a.t != V_STR || b.t != V_STR)
        return s;
    lg_tok_buf_init(&buf, c->t->a);
    while (i < s.u.s.n) {
        if (a.u.s.n && i + a.u.s.n <= s.u.s.n && !memcmp(s.u.s.p + i, a.u.s.p, a.u.s.n)) {
            lg_tok_buf_put(&buf, b.u.s.p, b.u.s.n);
            i += a.u.s.n;
        } else {
            lg_tok_buf_putc(&buf, s.u.s.p[i++]);
        }
    }
    r = vstr(axstr(c, buf.p, buf.len), buf.len);
    lg_tok_buf_free(&buf);
    return r;
}

static struct val items_of(struct cx *c, struct val d) {
    struct val r = vlist(c);
    size_t i;
    if (d.t != V_DICT && d.t != V_NS)
        return r;
    for (i = 0; r.t == V_LIST && i < d.u.d->n; i++) {
        struct val p = vlist(c);
        if (p.t != V_LIST)
            break;
        lpush(c, p.u.l, vstr(d.u.d->e[i].k, d.u.d->e[i].kn));
        lpush(c, p.u.l, d.u.d->e[i].v);
        lpush(c, r.u.l, p);
    }
    return r;
}

/* obj.method(args) */
static struct val method(struct cx *c, struct val o, const char *nm, size_t n,
                         const struct expr *e) {
    int has1, has2;
    struct val a1 = arg(c, e, 0, NULL, &has1), a2 = arg(c, e, 1, NULL, &has2);
    if (o.t == V_STR) {
        if (name_is(nm, n, "strip"))
            return strip(o, has1 ? a1 : vundef(), 1, 1);
        if (name_is(nm, n, "lstrip"))
            return strip(o, has1 ? a1 : vundef(), 1, 0);
        if (name_is(nm, n, "rstrip"))
            return strip(o, has1 ? a1 : vundef(), 0, 1);
        if (name_is(nm, n, "startswith") || name_is(nm, n, "endswith")) {
            int end = name_is(nm, n, "endswith");
            if (a1.t != V_STR)
                return vbool(0);
            if (a1.u.s.n > o.u.s.n)
                return vbool(0);
            return vbool(!memcmp(o.u.s.p + (end ? o.u.s.n - a1.u.s.n : 0), a1.u.s.p, a1.u.s.n));
        }
        if (name_is(nm, n, "split"))
            return split(c, o, has1 ? a1 : vnone(), has2 && a2.t == V_INT ? a2.u.i : -1);
        if (name_is(nm, n, "upper"))
            return case_map(c, o, 1);
        if (name_is(nm, n, "lower"))
            return case_map(c, o, 0);
        if (name_is(nm, n, "capitalize"))
            return case_map(c, o, 2);
        if (name_is(nm, n, "title"))
            return case_map(c, o, 3);
        if (name_is(nm, n, "replace"))
            return replace(c, o, a1, a2);
        if (name_is(nm, n, "find")) {
            const char *p;
            if (a1.t != V_STR)
                return vint(-1);
            p = a1.u.s.n ? memmem(o.u.s.p, o.u.s.n, a1.u.s.p, a1.u.s.n) : o.u.s.p;
            return vint(p ? (int64_t)(p - o.u.s.p) : -1);
        }
        if (name_is(nm, n, "join") && a1.t == V_LIST) {
            struct val r = vstr("", 0);
            size_t i;
            for (i = 0; i < a1.u.l->n; i++)
                r = i ? concat(c, concat(c, r, o), a1.u.l->v[i]) : vtostr(c, a1.u.l->v[i]);
            return r;
        }
    } else if (o.t == V_DICT || o.t == V_NS) {
        if (name_is(nm, n, "items"))
            return items_of(c, o);
        if (name_is(nm, n, "keys") || name_is(nm, n, "values")) {
            struct val r = vlist(c);
            size_t i;
            int keys = name_is(nm, n, "keys");
            for (i = 0; r.t == V_LIST && i < o.u.d->n; i++)
                lpush(c, r.u.l, keys ? vstr(o.u.d->e[i].k, o.u.d->e[i].kn) : o.u.d->e[i].v);
            return r;
        }
        if (name_is(nm, n, "get")) {
            struct val v = a1.t == V_STR ? attr(c, o, a1.u.s.p, a1.u.s.n) : vundef();
            return v.t != V_UNDEF ? v : has2 ? a2 : vnone();
        }
    }
    fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: unknown method '%.*s'", nm, n);
    return vundef();
}

static struct val call(struct cx *c, const struct expr *e) {
    const struct expr *f = e->a;
    int has1, has2, has3;
    if (f->k == E_ATTR)
        return method(c, eval(c, f->a), f->name, f->namen, e);
    if (f->k != E_NAME) {
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: not callable%.*s", "", 0);
        return vundef();
    }
    if (name_is(f->name, f->namen, "raise_exception")) {
        struct val m = vtostr(c, arg(c, e, 0, NULL, &has1));
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template raised: %.*s", m.u.s.p, m.u.s.n);
        return vundef();
    }
    if (name_is(f->name, f->namen, "namespace") || name_is(f->name, f->namen, "dict")) {
        struct val ns = vdict(c, name_is(f->name, f->namen, "dict") ? V_DICT : V_NS);
        int k;
        for (k = 0; ns.t != V_UNDEF && k < e->nargs; k++)
            if (e->argn[k])
                dset(c, ns.u.d, e->argn[k], e->argnl[k], eval(c, e->args[k]));
        return ns;
    }
    if (name_is(f->name, f->namen, "range")) {
        struct val a = arg(c, e, 0, NULL, &has1), b = arg(c, e, 1, NULL, &has2),
                   s = arg(c, e, 2, NULL, &has3), r = vlist(c);
        int64_t lo = has2 ? numi(a) : 0, hi = has2 ? numi(b) : numi(a), st = has3 ? numi(s) : 1, i;
        if (st == 0 || (hi - lo) / st > 1000000) {
            fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: bad range%.*s", "", 0);
            return vundef();
        }
        for (i = lo; r.t == V_LIST && (st > 0 ? i < hi : i > hi); i += st)
            lpush(c, r.u.l, vint(i));
        return r;
    }
    if (name_is(f->name, f->namen, "strftime_now")) {
        struct val fmt = arg(c, e, 0, NULL, &has1);
        char buf[128], fz[64];
        time_t now = time(NULL);
        struct tm tmv;
        size_t n;
        if (fmt.t != V_STR || fmt.u.s.n >= sizeof fz)
            return vstr("", 0);
        memcpy(fz, fmt.u.s.p, fmt.u.s.n);
        fz[fmt.u.s.n] = 0;
        localtime_r(&now, &tmv);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* the template chooses the format */
#endif
        n = strftime(buf, sizeof buf, fz, &tmv);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
        return vstr(axstr(c, buf, n), n);
    }
    fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: unknown function '%.*s'", f->name,
         f->namen);
    return vundef();
}

static size_t vlen(struct val v) {
    if (v.t == V_STR) { /* characters, not bytes */
        size_t i, n = 0;
        for (i = 0; i < v.u.s.n; i++)
            n += ((unsigned char)v.u.s.p[i] & 0xC0) != 0x80;
        return n;
    }
    if (v.t == V_LIST)
        return v.u.l->n;
    if (v.t == V_DICT || v.t == V_NS)
        return v.u.d->n;
    return 0;
}

static struct val filter(struct cx *c, const struct expr *e) {
    struct val v = eval(c, e->a);
    const char *nm = e->name;
    size_t n = e->namen;
    int has1, has2;
    struct val a1 = arg(c, e, 0, NULL, &has1);
    if (name_is(nm, n, "trim"))
        return strip(v, has1 ? a1 : vundef(), 1, 1);
    if (name_is(nm, n, "length") || name_is(nm, n, "count"))
        return vint((int64_t)vlen(v));
    if (name_is(nm, n, "tojson")) {
        struct lg_tok_buf b;
        struct val r, ind = has1 ? a1 : arg(c, e, 0, "indent", &has1);
        lg_tok_buf_init(&b, c->t->a);
        vjson(&b, v, ind.t == V_INT ? (int)ind.u.i : -1, 0);
        if (b.oom)
            c->err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        r = vstr(axstr(c, b.p, b.len), b.len);
        lg_tok_buf_free(&b);
        return r;
    }
    if (name_is(nm, n, "string"))
        return vtostr(c, v);
    if (name_is(nm, n, "upper"))
        return case_map(c, vtostr(c, v), 1);
    if (name_is(nm, n, "lower"))
        return case_map(c, vtostr(c, v), 0);
    if (name_is(nm, n, "capitalize"))
        return case_map(c, vtostr(c, v), 2);
    if (name_is(nm, n, "title"))
        return case_map(c, vtostr(c, v), 3);
    if (name_is(nm, n, "safe") || name_is(nm, n, "e") || name_is(nm, n, "escape"))
        return v; /* no autoescape in transformers' environment */
    if (name_is(nm, n, "default") || name_is(nm, n, "d")) {
        struct val b2 = arg(c, e, 1, "boolean", &has2);
        if (v.t == V_UNDEF || (has2 && truthy(b2) && !truthy(v)))
            return has1 ? a1 : vstr("", 0);
        return v;
    }
    if (name_is(nm, n, "join")) {
        struct val r = vstr("", 0), sep = has1 ? vtostr(c, a1) : vstr("", 0);
        size_t i;
        if (v.t != V_LIST)
            return vtostr(c, v);
        for (i = 0; i < v.u.l->n; i++)
            r = i ? concat(c, concat(c, r, sep), v.u.l->v[i]) : vtostr(c, v.u.l->v[i]);
        return r;
    }
    if (name_is(nm, n, "first") || name_is(nm, n, "last")) {
        int last = name_is(nm, n, "last");
        if (v.t == V_LIST)
            return v.u.l->n ? v.u.l->v[last ? v.u.l->n - 1 : 0] : vundef();
        if (v.t == V_STR && v.u.s.n)
            return vstr(v.u.s.p + (last ? v.u.s.n - 1 : 0), 1);
        return vundef();
    }
    if (name_is(nm, n, "list")) {
        if (v.t == V_DICT || v.t == V_NS) {
            struct val r = vlist(c);
            size_t i;
            for (i = 0; r.t == V_LIST && i < v.u.d->n; i++)
                lpush(c, r.u.l, vstr(v.u.d->e[i].k, v.u.d->e[i].kn));
            return r;
        }
        return v;
    }
    if (name_is(nm, n, "reverse")) {
        struct val none = vundef(), step = vint(-1);
        return slice(c, v, none, none, step);
    }
    if (name_is(nm, n, "items"))
        return items_of(c, v);
    if (name_is(nm, n, "int"))
        return v.t == V_STR ? vint(strtoll(axstr(c, v.u.s.p, v.u.s.n), NULL, 10)) : vint(numi(v));
    if (name_is(nm, n, "abs"))
        return v.t == V_FLOAT ? vfloat(v.u.f < 0 ? -v.u.f : v.u.f)
                              : vint(numi(v) < 0 ? -numi(v) : numi(v));
    if (name_is(nm, n, "replace"))
        return replace(c, vtostr(c, v), a1, arg(c, e, 1, NULL, &has2));
    fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: unknown filter '%.*s'", nm, n);
    return vundef();
}

static struct val test(struct cx *c, const struct expr *e) {
    const char *nm = e->name;
    size_t n = e->namen;
    struct val v = eval(c, e->a);
    int r;
    if (name_is(nm, n, "defined"))
        r = v.t != V_UNDEF;
    else if (name_is(nm, n, "undefined"))
        r = v.t == V_UNDEF;
    else if (name_is(nm, n, "none"))
        r = v.t == V_NONE;
    else if (name_is(nm, n, "string"))
        r = v.t == V_STR;
    else if (name_is(nm, n, "number"))
        r = v.t == V_INT || v.t == V_FLOAT;
    else if (name_is(nm, n, "integer"))
        r = v.t == V_INT;
    else if (name_is(nm, n, "float"))
        r = v.t == V_FLOAT;
    else if (name_is(nm, n, "boolean"))
        r = v.t == V_BOOL;
    else if (name_is(nm, n, "true"))
        r = v.t == V_BOOL && v.u.b;
    else if (name_is(nm, n, "false"))
        r = v.t == V_BOOL && !v.u.b;
    else if (name_is(nm, n, "mapping"))
        r = v.t == V_DICT || v.t == V_NS;
    else if (name_is(nm, n, "sequence") || name_is(nm, n, "iterable"))
        r = v.t == V_LIST || v.t == V_STR || v.t == V_DICT;
    else if (name_is(nm, n, "odd") || name_is(nm, n, "even"))
        r = (v.t == V_INT) && ((v.u.i & 1) == name_is(nm, n, "odd"));
    else if (name_is(nm, n, "equalto") || name_is(nm, n, "eq") || name_is(nm, n, "sameas")) {
        int has;
        r = veq(v, arg(c, e, 0, NULL, &has));
    } else {
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: unknown test '%.*s'", nm, n);
        r = 0;
    }
    return vbool(e->op ? !r : r);
}

static struct val eval(struct cx *c, const struct expr *e) {
    struct val v;
    if (!e || c->err)
        return vundef();
    if (++c->steps > CHAT_MAX_STEPS) {
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: too much work%.*s", "", 0);
        return vundef();
    }
    switch (e->k) {
    case E_LIT:
        return e->lit;
    case E_NAME: {
        struct val *p = lookup(c, e->name, e->namen);
        return p ? *p : vundef();
    }
    case E_ATTR:
        v = eval(c, e->a);
        if (v.t == V_LIST && e->namen && e->name[0] >= '0' && e->name[0] <= '9')
            return item(c, v, vint(strtoll(axstr(c, e->name, e->namen), NULL, 10)));
        return attr(c, v, e->name, e->namen);
    case E_ITEM:
        v = eval(c, e->a);
        return item(c, v, eval(c, e->b));
    case E_SLICE:
        v = eval(c, e->a);
        return slice(c, v, eval(c, e->b), eval(c, e->c), e->args ? eval(c, e->args[0]) : vundef());
    case E_CALL:
        return call(c, e);
    case E_FILTER:
        return filter(c, e);
    case E_TEST:
        return test(c, e);
    case E_NOT:
        return vbool(!truthy(eval(c, e->a)));
    case E_NEG:
        v = eval(c, e->a);
        return v.t == V_FLOAT ? vfloat(-v.u.f) : vint(-numi(v));
    case E_AND:
        v = eval(c, e->a);
        return truthy(v) ? eval(c, e->b) : v;
    case E_OR:
        v = eval(c, e->a);
        return truthy(v) ? v : eval(c, e->b);
    case E_COND:
        return truthy(eval(c, e->b)) ? eval(c, e->a) : e->c ? eval(c, e->c) : vundef();
    case E_BIN: {
        struct val a = eval(c, e->a);
        return binop(c, e->op, a, eval(c, e->b));
    }
    case E_LIST: {
        struct val r = vlist(c);
        int i;
        for (i = 0; r.t == V_LIST && i < e->nargs; i++)
            lpush(c, r.u.l, eval(c, e->args[i]));
        return r;
    }
    case E_DICT: {
        struct val r = vdict(c, V_DICT);
        int i;
        for (i = 0; r.t == V_DICT && i + 1 < e->nargs; i += 2) {
            struct val k = vtostr(c, eval(c, e->args[i]));
            dset(c, r.u.d, k.u.s.p, k.u.s.n, eval(c, e->args[i + 1]));
        }
        return r;
    }
    }
    return vundef();
}

static void exec_body(struct cx *c, const struct node *n);

static void push_scope(struct cx *c, struct scope *s) {
    struct val d = vdict(c, V_DICT);
    s->up = c->sc;
    s->vars = d.t == V_DICT ? d.u.d : NULL;
    c->sc = s;
}

static void exec_for(struct cx *c, const struct node *n) {
    struct val it = eval(c, n->e), loop;
    struct scope sc;
    size_t i, cnt = 0, total;
    struct val *kept;
    if (c->err)
        return;
    if (it.t == V_DICT || it.t == V_NS) { /* iterating a dict gives its keys */
        struct val r = vlist(c);
        for (i = 0; r.t == V_LIST && i < it.u.d->n; i++)
            lpush(c, r.u.l, vstr(it.u.d->e[i].k, it.u.d->e[i].kn));
        it = r;
    } else if (it.t == V_STR) {
        struct val r = vlist(c);
        for (i = 0; r.t == V_LIST && i < it.u.s.n;) {
            size_t l = lg_tok_utf8_len((unsigned char)it.u.s.p[i]);
            l = LG_MIN(l, it.u.s.n - i);
            lpush(c, r.u.l, vstr(it.u.s.p + i, l));
            i += l;
        }
        it = r;
    } else if (it.t == V_UNDEF || it.t == V_NONE) {
        it = vlist(c);
    }
    if (it.t != V_LIST) {
        fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: cannot iterate over that%.*s", "", 0);
        return;
    }
    push_scope(c, &sc);
    /* the inline "if" filters first, so loop.length/last count the kept items */
    kept = ax(c, (it.u.l->n + 1) * sizeof *kept);
    for (i = 0; kept && i < it.u.l->n && !c->err; i++) {
        struct val x = it.u.l->v[i];
        if (n->cond) {
            if (n->nvar == 2 && x.t == V_LIST && x.u.l->n == 2) {
                dset(c, sc.vars, n->var[0], n->varn[0], x.u.l->v[0]);
                dset(c, sc.vars, n->var[1], n->varn[1], x.u.l->v[1]);
            } else {
                dset(c, sc.vars, n->var[0], n->varn[0], x);
            }
            if (!truthy(eval(c, n->cond)))
                continue;
        }
        kept[cnt++] = x;
    }
    total = cnt;
    for (i = 0; i < total && !c->err; i++) {
        struct val x = kept[i];
        loop = vdict(c, V_DICT);
        if (loop.t != V_DICT)
            break;
        dset(c, loop.u.d, "index0", 6, vint((int64_t)i));
        dset(c, loop.u.d, "index", 5, vint((int64_t)i + 1));
        dset(c, loop.u.d, "revindex", 8, vint((int64_t)(total - i)));
        dset(c, loop.u.d, "revindex0", 9, vint((int64_t)(total - i - 1)));
        dset(c, loop.u.d, "first", 5, vbool(i == 0));
        dset(c, loop.u.d, "last", 4, vbool(i + 1 == total));
        dset(c, loop.u.d, "length", 6, vint((int64_t)total));
        dset(c, loop.u.d, "previtem", 8, i ? kept[i - 1] : vundef());
        dset(c, loop.u.d, "nextitem", 8, i + 1 < total ? kept[i + 1] : vundef());
        dset(c, sc.vars, "loop", 4, loop);
        if (n->nvar == 2) {
            if (x.t != V_LIST || x.u.l->n != 2) {
                fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: cannot unpack%.*s", "", 0);
                break;
            }
            dset(c, sc.vars, n->var[0], n->varn[0], x.u.l->v[0]);
            dset(c, sc.vars, n->var[1], n->varn[1], x.u.l->v[1]);
        } else {
            dset(c, sc.vars, n->var[0], n->varn[0], x);
        }
        exec_body(c, n->body);
        if (c->brk == 1) {
            c->brk = 0;
            break;
        }
        c->brk = 0;
    }
    c->sc = sc.up;
    if (total == 0 && n->els)
        exec_body(c, n->els);
}

static void exec_body(struct cx *c, const struct node *n) {
    for (; n && !c->err && !c->brk; n = n->next) {
        if (++c->steps > CHAT_MAX_STEPS) {
            fail(c, LLMGPU_ERR_INVALID_ARGUMENT, "chat template: too much work%.*s", "", 0);
            return;
        }
        switch (n->k) {
        case N_TEXT:
            lg_tok_buf_put(&c->out, n->s, n->n);
            break;
        case N_OUT: {
            struct val v = eval(c, n->e);
            vrepr(&c->out, v, 1);
            break;
        }
        case N_IF: {
            int i;
            for (i = 0; i < n->ncond && !c->err; i++)
                if (truthy(eval(c, n->conds[i]))) {
                    exec_body(c, n->bodies[i]);
                    break;
                }
            if (i == n->ncond && n->els)
                exec_body(c, n->els);
            break;
        }
        case N_FOR:
            exec_for(c, n);
            break;
        case N_SET: {
            struct val v = eval(c, n->e);
            if (n->nvar == 2) {
                struct val *ns = lookup(c, n->var[0], n->varn[0]);
                if (!ns || ns->t != V_NS) {
                    fail(c, LLMGPU_ERR_INVALID_ARGUMENT,
                         "chat template: cannot assign an attribute of '%.*s'", n->var[0],
                         n->varn[0]);
                    return;
                }
                dset(c, ns->u.d, n->var[1], n->varn[1], v);
            } else {
                dset(c, c->sc->vars, n->var[0], n->varn[0], v);
            }
            break;
        }
        case N_BREAK:
            c->brk = 1;
            return;
        case N_CONT:
            c->brk = 2;
            return;
        case N_BLOCK:
            exec_body(c, n->body);
            break;
        }
    }
}

enum llmgpu_status lg_tok_chat_apply(const struct lg_tokenizer *t, const char *tmpl,
                                     const struct lg_chat_msg *msgs, size_t n, uint32_t flags,
                                     char *out, size_t *len_inout) {
    struct cx c;
    struct scope top;
    struct node *root;
    struct val msgl;
    size_t i, cap;
    enum llmgpu_status st;
    static const char *const names[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    if (!t || !len_inout || (!msgs && n))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (!tmpl)
        tmpl = t->chat_template;
    if (!tmpl) {
        lg_err(&t->log, "chat template: the tokenizer has none and none was given");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    cap = out ? *len_inout : 0;
    memset(&c, 0, sizeof c);
    c.t = t;
    lg_tok_buf_init(&c.out, t->a);
    lex(&c, tmpl, strlen(tmpl));
    root = c.err ? NULL : parse_body(&c, NULL, 0);
    if (!c.err && peek(&c)->k != T_EOF)
        fail(&c, LLMGPU_ERR_BAD_TOKENIZER, "chat template: unexpected '%.*s'", peek(&c)->s,
             peek(&c)->n);
    if (c.err == LLMGPU_ERR_BAD_TOKENIZER && tmpl != t->chat_template)
        c.err = LLMGPU_ERR_INVALID_ARGUMENT; /* the caller's own template */
    push_scope(&c, &top);
    msgl = vlist(&c);
    for (i = 0; i < n && msgl.t == V_LIST && !c.err; i++) {
        struct val m = vdict(&c, V_DICT);
        if (m.t != V_DICT)
            break;
        if (!msgs[i].role || !msgs[i].content) {
            c.err = LLMGPU_ERR_INVALID_ARGUMENT;
            break;
        }
        dset(&c, m.u.d, "role", 4, vstr(msgs[i].role, strlen(msgs[i].role)));
        dset(&c, m.u.d, "content", 7, vstr(msgs[i].content, strlen(msgs[i].content)));
        lpush(&c, msgl.u.l, m);
    }
    dset(&c, top.vars, "messages", 8, msgl);
    dset(&c, top.vars, "add_generation_prompt", 21,
         vbool((flags & LG_CHAT_ADD_GENERATION_PROMPT) != 0));
    if (flags & LG_CHAT_THINKING_OFF)
        dset(&c, top.vars, "enable_thinking", 15, vbool(0));
    for (i = 0; i < 4; i++)
        if (t->special_str[i])
            dset(&c, top.vars, names[i], strlen(names[i]),
                 vstr(t->special_str[i], strlen(t->special_str[i])));
    if (!c.err)
        exec_body(&c, root);
    if (!c.err && c.out.oom)
        c.err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    st = (enum llmgpu_status)c.err;
    if (!st) {
        *len_inout = c.out.len;
        if (out && cap < c.out.len)
            st = LLMGPU_ERR_BUFFER_TOO_SMALL;
        else if (out && c.out.len)
            memcpy(out, c.out.p, c.out.len);
    }
    lg_tok_buf_free(&c.out);
    while (c.blocks) {
        struct blk *b = c.blocks;
        c.blocks = b->next;
        lg_free(t->a, b);
    }
    return st;
}
