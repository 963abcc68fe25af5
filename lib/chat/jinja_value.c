/*
 * jinja_value.c - values of the Jinja interpreter (jinja.h) with Python's semantics:
 * str() and repr(), truthiness, equality, operators, indexing and slicing by code point,
 * json.dumps() as transformers' tojson filter calls it, and the filters, tests, string /
 * dict methods and global functions that chat templates use. Errors that Python would
 * raise at render time (undefined values used, type errors, raise_exception) are
 * LLMGPU_ERR_INVALID_ARGUMENT; names this file lacks are LLMGPU_ERR_UNSUPPORTED.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "chat/jinja.h"

size_t lg_jinja_rspace(const char *s, size_t n);
size_t lg_jinja_lspace(const char *s, size_t n);

#define FAIL_TYPE(c, ...) lg_jinja_fail((c), LLMGPU_ERR_INVALID_ARGUMENT, __VA_ARGS__)
#define FAIL_UNSUP(c, ...) lg_jinja_fail((c), LLMGPU_ERR_UNSUPPORTED, __VA_ARGS__)

/* ---- constructors ---- */
struct jv lg_jv_str(const char *s, size_t n) {
    struct jv v = {0};
    v.t = JT_STR;
    v.u.s = s;
    v.n = n;
    return v;
}
struct jv lg_jv_int(int64_t i) {
    struct jv v = {0};
    v.t = JT_INT;
    v.u.i = i;
    return v;
}
struct jv lg_jv_bool(int b) {
    struct jv v = {0};
    v.t = JT_BOOL;
    v.u.i = b != 0;
    return v;
}
struct jv lg_jv_none(void) {
    struct jv v = {0};
    v.t = JT_NONE;
    return v;
}
struct jv lg_jv_undef(const char *name, size_t n) {
    struct jv v = {0};
    v.t = JT_UNDEF;
    v.u.s = name;
    v.n = n;
    return v;
}
static struct jv jv_float(double f) {
    struct jv v = {0};
    v.t = JT_FLOAT;
    v.u.f = f;
    return v;
}

const char *lg_jv_typename(const struct jv *v) {
    static const char *const names[] = {"Undefined", "NoneType", "bool",  "int",
                                        "str",       "list",     "dict",  "Namespace",
                                        "LoopContext", "Macro",  "function"};
    switch (v->t) {
    case JT_UNDEF: return names[0];
    case JT_NONE: return names[1];
    case JT_BOOL: return names[2];
    case JT_INT: return names[3];
    case JT_FLOAT: return "float";
    case JT_STR: return names[4];
    case JT_LIST: return v->tuple == JV_GEN ? "generator" : v->tuple ? "tuple" : names[5];
    case JT_DICT: return names[6];
    case JT_NS: return names[7];
    case JT_LOOP: return names[8];
    case JT_MACRO: return names[9];
    default: return names[10];
    }
}

static _Noreturn void fail_undef(struct jctx *c, const struct jv *v) {
    if (v->tuple)
        FAIL_TYPE(c, "undefined value: no attribute or key '%.*s'", (int)LG_MIN(v->n, 80), v->u.s);
    if (v->u.s)
        FAIL_TYPE(c, "'%.*s' is undefined", (int)LG_MIN(v->n, 80), v->u.s);
    FAIL_TYPE(c, "undefined value used");
}

/* ---- buffers, lists, dicts ---- */
void lg_jbuf_put(struct jctx *c, struct jbuf *b, const char *s, size_t n) {
    if (!n)
        return;
    if (n >= 256)
        lg_jinja_work(c, n >> 8);
    if (n > b->cap - b->n) {
        size_t need, cap = b->cap ? b->cap : 256;
        char *np;
        if (lg_add_size(b->n, n, &need))
            FAIL_UNSUP(c, "output too large");
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                FAIL_UNSUP(c, "output too large");
            cap *= 2;
        }
        np = lg_jinja_alloc(c, cap);
        if (b->n)
            memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put_s(struct jctx *c, struct jbuf *b, const char *s) {
    lg_jbuf_put(c, b, s, strlen(s));
}
static struct jv buf_str(const struct jbuf *b) {
    return lg_jv_str(b->p ? b->p : "", b->n);
}

struct jv lg_jlist_make(struct jctx *c, size_t n) {
    struct jv v = {0};
    struct jlist *l = lg_jinja_alloc(c, sizeof *l);
    size_t bytes;
    if (lg_mul_size(n, sizeof(struct jv), &bytes))
        FAIL_UNSUP(c, "list too large");
    l->n = n;
    l->v = n ? lg_jinja_alloc(c, bytes) : NULL;
    v.t = JT_LIST;
    v.u.l = l;
    return v;
}

struct jdict *lg_jdict_new(struct jctx *c, size_t cap) {
    struct jdict *d = lg_jinja_alloc(c, sizeof *d);
    if (cap) {
        d->k = lg_jinja_alloc(c, cap * sizeof *d->k);
        d->v = lg_jinja_alloc(c, cap * sizeof *d->v);
        d->cap = cap;
    }
    return d;
}

static struct jv *dict_find(const struct jdict *d, const struct jv *key) {
    size_t i;
    for (i = 0; i < d->n; i++)
        if (lg_jv_eq(&d->k[i], key))
            return &d->v[i];
    return NULL;
}

struct jv *lg_jdict_get(const struct jdict *d, const char *key, size_t n) {
    size_t i;
    for (i = 0; i < d->n; i++)
        if (d->k[i].t == JT_STR && d->k[i].n == n && memcmp(d->k[i].u.s, key, n) == 0)
            return &d->v[i];
    return NULL;
}

void lg_jdict_set(struct jctx *c, struct jdict *d, struct jv key, struct jv val) {
    struct jv *slot = dict_find(d, &key);
    if (slot) {
        *slot = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct jv *nk = lg_jinja_alloc(c, cap * sizeof *nk), *nv = lg_jinja_alloc(c, cap * sizeof *nv);
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
}

/* ---- UTF-8 helpers (strings are indexed by code point, as Python does) ---- */
static size_t cp_count(const char *s, size_t n) {
    size_t i, k = 0;
    for (i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}
/* Byte length of the character starting at s[i]. */
static size_t cp_len(const char *s, size_t n, size_t i) {
    size_t j = i + 1;
    while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
        j++;
    return j - i;
}
static int32_t cp_decode(const char *s, size_t n, size_t *len) {
    int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);
    if (r <= 0) {
        *len = 1;
        return -1;
    }
    *len = (size_t)r;
    return cp;
}
/* Code point offsets: offs[i] is the byte offset of character i, offs[count] = n. */
static size_t *cp_offsets(struct jctx *c, const char *s, size_t n, size_t *count) {
    size_t k, i, j = 0;
    size_t *offs;
    lg_jinja_work(c, n >> 6); /* indexing a long string repeatedly is quadratic */
    k = cp_count(s, n);
    offs = lg_jinja_alloc(c, (k + 1) * sizeof *offs);
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            offs[j++] = i;
    /* a string starting with a stray continuation byte: treat it as one character */
    if (j < k + 1)
        offs[j] = n;
    *count = k;
    return offs;
}

/* ---- truthiness and equality ---- */
int lg_jv_truthy(const struct jv *v) {
    switch (v->t) {
    case JT_UNDEF:
    case JT_NONE: return 0;
    case JT_BOOL:
    case JT_INT: return v->u.i != 0;
    case JT_FLOAT: return v->u.f != 0.0;
    case JT_STR: return v->n > 0;
    case JT_LIST: return v->tuple == JV_GEN || v->u.l->n > 0; /* generators are always true */
    case JT_DICT: return v->u.d->n > 0;
    default: return 1;
    }
}

static int is_num(const struct jv *v) {
    return v->t == JT_BOOL || v->t == JT_INT || v->t == JT_FLOAT;
}
static double num_f(const struct jv *v) {
    return v->t == JT_FLOAT ? v->u.f : (double)v->u.i;
}

static int eq_depth(const struct jv *a, const struct jv *b, int depth);

int lg_jv_eq(const struct jv *a, const struct jv *b) {
    return eq_depth(a, b, 0);
}

/* Python's ==; nesting deeper than 200 compares unequal (Python would raise RecursionError
 * somewhat deeper; no chat template nests values like that). */
static int eq_depth(const struct jv *a, const struct jv *b, int depth) {
    size_t i;
    if (depth > 200)
        return 0;
    if (is_num(a) && is_num(b)) {
        if (a->t == JT_FLOAT || b->t == JT_FLOAT)
            return num_f(a) == num_f(b);
        return a->u.i == b->u.i;
    }
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case JT_UNDEF:
    case JT_NONE: return 1;
    case JT_STR: return a->n == b->n && memcmp(a->u.s, b->u.s, a->n) == 0;
    case JT_LIST:
        if (a->tuple == JV_GEN || b->tuple == JV_GEN || a->u.l == b->u.l)
            return a->u.l == b->u.l && a->tuple == b->tuple; /* identity first, as Python */
        if (a->tuple != b->tuple || a->u.l->n != b->u.l->n)
            return 0;
        for (i = 0; i < a->u.l->n; i++)
            if (!eq_depth(&a->u.l->v[i], &b->u.l->v[i], depth + 1))
                return 0;
        return 1;
    case JT_DICT:
        if (a->u.d == b->u.d)
            return 1;
        if (a->u.d->n != b->u.d->n)
            return 0;
        for (i = 0; i < a->u.d->n; i++) {
            const struct jv *o = dict_find(b->u.d, &a->u.d->k[i]);
            if (!o || !eq_depth(&a->u.d->v[i], o, depth + 1))
                return 0;
        }
        return 1;
    case JT_NS: return a->u.d == b->u.d;
    case JT_LOOP: return a->u.lp == b->u.lp;
    case JT_MACRO: return a->u.mc == b->u.mc;
    case JT_FUNC: return a->u.i == b->u.i;
    default: return 0;
    }
}

/* ---- str() and repr() ---- */
static void write_float(struct jctx *c, struct jbuf *b, double f, int json) {
    char buf[64], digits[32], out[64];
    int prec, e, nd = 0, k = 0, decpt, i;
    char *p;
    if (isnan(f)) {
        put_s(c, b, json ? "NaN" : "nan");
        return;
    }
    if (isinf(f)) {
        put_s(c, b, f < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"));
        return;
    }
    /* shortest digits that round-trip (Python's repr) */
    for (prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    if (prec == 17)
        snprintf(buf, sizeof buf, "%.16e", f);
    p = buf;
    if (*p == '-') {
        out[k++] = '-';
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    e = (int)strtol(p + 1, NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    decpt = e + 1;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[k++] = '0';
            out[k++] = '.';
            for (i = 0; i < -decpt; i++)
                out[k++] = '0';
            for (i = 0; i < nd; i++)
                out[k++] = digits[i];
        } else {
            for (i = 0; i < decpt; i++)
                out[k++] = i < nd ? digits[i] : '0';
            out[k++] = '.';
            if (nd > decpt)
                for (i = decpt; i < nd; i++)
                    out[k++] = digits[i];
            else
                out[k++] = '0';
        }
        lg_jbuf_put(c, b, out, (size_t)k);
    } else {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (i = 1; i < nd; i++)
                out[k++] = digits[i];
        }
        lg_jbuf_put(c, b, out, (size_t)k);
        snprintf(buf, sizeof buf, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        put_s(c, b, buf);
    }
}

static int py_printable(int32_t cp) {
    utf8proc_category_t cat;
    if (cp == ' ')
        return 1;
    cat = utf8proc_category(cp);
    return !(cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
             cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO ||
             cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_ZL ||
             cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_ZS);
}

static void write_repr_str(struct jctx *c, struct jbuf *b, const char *s, size_t n) {
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    size_t i = 0;
    lg_jbuf_put(c, b, &q, 1);
    while (i < n) {
        size_t len;
        int32_t cp = cp_decode(s + i, n - i, &len);
        char esc[16];
        if (cp == q || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            lg_jbuf_put(c, b, esc, 2);
        } else if (cp == '\n') {
            put_s(c, b, "\\n");
        } else if (cp == '\r') {
            put_s(c, b, "\\r");
        } else if (cp == '\t') {
            put_s(c, b, "\\t");
        } else if (cp < 0) {
            /* not UTF-8: Python strings cannot hold it; show the byte */
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i]);
            put_s(c, b, esc);
        } else if (!py_printable(cp)) {
            if (cp < 0x100)
                snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            else if (cp < 0x10000)
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            else
                snprintf(esc, sizeof esc, "\\U%08x", (unsigned)cp);
            put_s(c, b, esc);
        } else {
            lg_jbuf_put(c, b, s + i, len);
        }
        i += len;
    }
    lg_jbuf_put(c, b, &q, 1);
}

static void write_repr(struct jctx *c, struct jbuf *b, const struct jv *v);

static void write_any(struct jctx *c, struct jbuf *b, const struct jv *v, int repr) {
    char buf[64];
    size_t i;
    if (++c->depth > c->lim.max_depth)
        FAIL_UNSUP(c, "value nested too deeply");
    switch (v->t) {
    case JT_UNDEF:
        if (repr)
            put_s(c, b, "Undefined");
        break;
    case JT_NONE: put_s(c, b, "None"); break;
    case JT_BOOL: put_s(c, b, v->u.i ? "True" : "False"); break;
    case JT_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
        put_s(c, b, buf);
        break;
    case JT_FLOAT: write_float(c, b, v->u.f, 0); break;
    case JT_STR:
        if (repr)
            write_repr_str(c, b, v->u.s, v->n);
        else
            lg_jbuf_put(c, b, v->u.s, v->n);
        break;
    case JT_LIST:
        if (v->tuple == JV_GEN) {
            put_s(c, b, "<generator object>"); /* Python adds an address */
            break;
        }
        put_s(c, b, v->tuple ? "(" : "[");
        for (i = 0; i < v->u.l->n; i++) {
            if (i)
                put_s(c, b, ", ");
            write_repr(c, b, &v->u.l->v[i]);
        }
        put_s(c, b, v->tuple ? (v->u.l->n == 1 ? ",)" : ")") : "]");
        break;
    case JT_DICT:
    case JT_NS:
        put_s(c, b, v->t == JT_NS ? "<Namespace {" : "{");
        for (i = 0; i < v->u.d->n; i++) {
            if (i)
                put_s(c, b, ", ");
            write_repr(c, b, &v->u.d->k[i]);
            put_s(c, b, ": ");
            write_repr(c, b, &v->u.d->v[i]);
        }
        put_s(c, b, v->t == JT_NS ? "}>" : "}");
        break;
    case JT_LOOP:
        snprintf(buf, sizeof buf, "<LoopContext %zu/%zu>", v->u.lp->i + 1, v->u.lp->items->n);
        put_s(c, b, buf);
        break;
    case JT_MACRO:
        put_s(c, b, "<Macro '");
        lg_jbuf_put(c, b, v->u.mc->m->s, v->u.mc->m->n);
        put_s(c, b, "'>");
        break;
    default: put_s(c, b, "<function>"); break;
    }
    c->depth--;
}

static void write_repr(struct jctx *c, struct jbuf *b, const struct jv *v) {
    write_any(c, b, v, 1);
}
void lg_jv_write_str(struct jctx *c, struct jbuf *b, const struct jv *v) {
    write_any(c, b, v, 0);
}

struct jv lg_jv_to_str(struct jctx *c, const struct jv *v) {
    struct jbuf b = {0};
    if (v->t == JT_STR)
        return *v;
    lg_jv_write_str(c, &b, v);
    return buf_str(&b);
}

/* ---- JSON (transformers' tojson: json.dumps(x, ensure_ascii=False, indent=indent,
 * separators=separators, sort_keys=sort_keys)) ---- */
struct jjson {
    int indent; /* < 0: none */
    int ensure_ascii, sort_keys;
    struct jv item_sep, key_sep;
};

static void json_str(struct jctx *c, struct jbuf *b, const char *s, size_t n, int ascii) {
    size_t i = 0;
    put_s(c, b, "\"");
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        char esc[16];
        if (ch == '"') {
            put_s(c, b, "\\\"");
        } else if (ch == '\\') {
            put_s(c, b, "\\\\");
        } else if (ch == '\n') {
            put_s(c, b, "\\n");
        } else if (ch == '\r') {
            put_s(c, b, "\\r");
        } else if (ch == '\t') {
            put_s(c, b, "\\t");
        } else if (ch == '\b') {
            put_s(c, b, "\\b");
        } else if (ch == '\f') {
            put_s(c, b, "\\f");
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put_s(c, b, esc);
        } else if (ch >= 0x80 && ascii) {
            size_t len;
            int32_t cp = cp_decode(s + i, n - i, &len);
            if (cp < 0)
                cp = 0xFFFD;
            if (cp >= 0x10000) {
                uint32_t u = (uint32_t)cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (u >> 10), 0xDC00 + (u & 0x3FF));
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            }
            put_s(c, b, esc);
            i += len;
            continue;
        } else {
            lg_jbuf_put(c, b, s + i, 1);
        }
        i++;
    }
    put_s(c, b, "\"");
}

static void json_newline(struct jctx *c, struct jbuf *b, const struct jjson *o, int level) {
    int i;
    put_s(c, b, "\n");
    for (i = 0; i < o->indent * level; i++)
        put_s(c, b, " ");
}

static int key_cmp(const void *x, const void *y) {
    const struct jv *a = *(const struct jv *const *)x, *b = *(const struct jv *const *)y;
    int r = memcmp(a->u.s, b->u.s, LG_MIN(a->n, b->n));
    return r ? r : (a->n > b->n) - (a->n < b->n);
}

static void json_dump(struct jctx *c, struct jbuf *b, const struct jv *v, const struct jjson *o,
                      int level) {
    size_t i;
    char buf[64];
    if (++c->depth > c->lim.max_depth)
        FAIL_UNSUP(c, "value nested too deeply for tojson");
    switch (v->t) {
    case JT_NONE: put_s(c, b, "null"); break;
    case JT_BOOL: put_s(c, b, v->u.i ? "true" : "false"); break;
    case JT_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
        put_s(c, b, buf);
        break;
    case JT_FLOAT: write_float(c, b, v->u.f, 1); break;
    case JT_STR: json_str(c, b, v->u.s, v->n, o->ensure_ascii); break;
    case JT_LIST:
        if (v->tuple == JV_GEN)
            FAIL_TYPE(c, "tojson: object of type generator is not JSON serializable");
        if (!v->u.l->n) {
            put_s(c, b, "[]");
            break;
        }
        put_s(c, b, "[");
        for (i = 0; i < v->u.l->n; i++) {
            if (i)
                lg_jbuf_put(c, b, o->item_sep.u.s, o->item_sep.n);
            if (o->indent >= 0)
                json_newline(c, b, o, level + 1);
            json_dump(c, b, &v->u.l->v[i], o, level + 1);
        }
        if (o->indent >= 0)
            json_newline(c, b, o, level);
        put_s(c, b, "]");
        break;
    case JT_DICT: {
        const struct jdict *d = v->u.d;
        const struct jv **order;
        if (!d->n) {
            put_s(c, b, "{}");
            break;
        }
        order = lg_jinja_alloc(c, d->n * sizeof *order);
        for (i = 0; i < d->n; i++) {
            order[i] = &d->k[i];
            if (o->sort_keys && d->k[i].t != JT_STR)
                FAIL_TYPE(c, "tojson(sort_keys=true): keys must be strings");
        }
        if (o->sort_keys)
            qsort(order, d->n, sizeof *order, key_cmp);
        put_s(c, b, "{");
        for (i = 0; i < d->n; i++) {
            const struct jv *k = order[i];
            if (i)
                lg_jbuf_put(c, b, o->item_sep.u.s, o->item_sep.n);
            if (o->indent >= 0)
                json_newline(c, b, o, level + 1);
            if (k->t == JT_STR) {
                json_str(c, b, k->u.s, k->n, o->ensure_ascii);
            } else if (k->t == JT_INT || k->t == JT_FLOAT || k->t == JT_BOOL || k->t == JT_NONE) {
                struct jbuf kb = {0};
                json_dump(c, &kb, k, o, level);
                json_str(c, b, kb.p, kb.n, 0);
            } else {
                FAIL_TYPE(c, "tojson: keys must be str, int, float, bool or None, not %s",
                          lg_jv_typename(k));
            }
            lg_jbuf_put(c, b, o->key_sep.u.s, o->key_sep.n);
            json_dump(c, b, &d->v[k - d->k], o, level + 1);
        }
        if (o->indent >= 0)
            json_newline(c, b, o, level);
        put_s(c, b, "}");
        break;
    }
    case JT_UNDEF: fail_undef(c, v);
    default: FAIL_TYPE(c, "tojson: object of type %s is not JSON serializable", lg_jv_typename(v));
    }
    c->depth--;
}

/* ---- iteration, attributes, items, slices ---- */
struct jlist *lg_jv_iter(struct jctx *c, const struct jv *v) {
    struct jlist *l;
    size_t i, k, n;
    switch (v->t) {
    case JT_LIST:
        if (v->tuple == JV_GEN && v->n)
            FAIL_TYPE(c, "%.*s", (int)v->u.l->v[0].n, v->u.l->v[0].u.s);
        return v->u.l;
    case JT_UNDEF:
        l = lg_jinja_alloc(c, sizeof *l);
        return l;
    case JT_DICT:
        l = lg_jinja_alloc(c, sizeof *l);
        l->n = v->u.d->n;
        l->v = v->u.d->k;
        return l;
    case JT_STR:
        lg_jinja_work(c, v->n >> 4);
        n = cp_count(v->u.s, v->n);
        l = lg_jinja_alloc(c, sizeof *l);
        l->v = lg_jinja_alloc(c, (n ? n : 1) * sizeof *l->v);
        for (i = 0, k = 0; i < v->n && k < n; k++) {
            size_t len = cp_len(v->u.s, v->n, i);
            l->v[k] = lg_jv_str(v->u.s + i, len);
            i += len;
        }
        l->n = k;
        return l;
    default: FAIL_TYPE(c, "'%s' object is not iterable", lg_jv_typename(v));
    }
}

static struct jv undef_attr(const char *name, size_t n) {
    struct jv u = lg_jv_undef(name, n);
    u.tuple = 1;
    return u;
}

struct jv lg_jv_getattr(struct jctx *c, const struct jv *obj, const char *name, size_t n) {
    const struct jv *r;
    if (obj->t == JT_UNDEF)
        fail_undef(c, obj);
    if (obj->t == JT_DICT || obj->t == JT_NS) {
        r = lg_jdict_get(obj->u.d, name, n);
        return r ? *r : undef_attr(name, n);
    }
    if (obj->t == JT_LOOP) {
        const struct jloop *lp = obj->u.lp;
        size_t len = lp->items->n;
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
        if (IS("index"))
            return lg_jv_int((int64_t)lp->i + 1);
        if (IS("index0"))
            return lg_jv_int((int64_t)lp->i);
        if (IS("revindex"))
            return lg_jv_int((int64_t)(len - lp->i));
        if (IS("revindex0"))
            return lg_jv_int((int64_t)(len - lp->i - 1));
        if (IS("first"))
            return lg_jv_bool(lp->i == 0);
        if (IS("last"))
            return lg_jv_bool(lp->i + 1 == len);
        if (IS("length"))
            return lg_jv_int((int64_t)len);
        if (IS("depth"))
            return lg_jv_int(lp->depth);
        if (IS("depth0"))
            return lg_jv_int(lp->depth - 1);
        if (IS("previtem"))
            return lp->i > 0 ? lp->items->v[lp->i - 1] : undef_attr(name, n);
        if (IS("nextitem"))
            return lp->i + 1 < len ? lp->items->v[lp->i + 1] : undef_attr(name, n);
#undef IS
    }
    return undef_attr(name, n);
}

/* Python index i of a sequence of length len (negative from the end); -1 when outside. */
static int64_t seq_index(int64_t i, size_t len) {
    if (i < 0)
        i += (int64_t)len;
    return i < 0 || (uint64_t)i >= len ? -1 : i;
}

struct jv lg_jv_getitem(struct jctx *c, const struct jv *obj, const struct jv *key) {
    if (obj->t == JT_UNDEF)
        fail_undef(c, obj);
    if (obj->t == JT_DICT || obj->t == JT_NS) {
        const struct jv *r = dict_find(obj->u.d, key);
        if (r)
            return *r;
    } else if (((obj->t == JT_LIST && obj->tuple != JV_GEN) || obj->t == JT_STR) &&
               (key->t == JT_INT || key->t == JT_BOOL)) {
        if (obj->t == JT_LIST) {
            int64_t i = seq_index(key->u.i, obj->u.l->n);
            if (i >= 0)
                return obj->u.l->v[i];
        } else {
            size_t n, *offs = cp_offsets(c, obj->u.s, obj->n, &n);
            int64_t i = seq_index(key->u.i, n);
            if (i >= 0)
                return lg_jv_str(obj->u.s + offs[i], offs[i + 1] - offs[i]);
        }
    }
    if (key->t == JT_STR)
        return lg_jv_getattr(c, obj, key->u.s, key->n);
    return undef_attr(NULL, 0);
}

static int64_t slice_arg(struct jctx *c, const struct jv *v, int64_t dflt) {
    if (!v || v->t == JT_NONE || v->t == JT_UNDEF)
        return dflt;
    if (v->t != JT_INT && v->t != JT_BOOL)
        FAIL_TYPE(c, "slice indices must be integers or None");
    return v->u.i;
}

struct jv lg_jv_slice(struct jctx *c, const struct jv *obj, const struct jv *start,
                      const struct jv *stop, const struct jv *step) {
    int64_t len, st = slice_arg(c, step, 1), a, z, i, cnt = 0;
    size_t n = 0, *offs = NULL;
    struct jv r;
    if (obj->t == JT_UNDEF)
        fail_undef(c, obj);
    /* Jinja compiles slices to a plain Python subscript (no environment.getitem) */
    if ((obj->t != JT_LIST && obj->t != JT_STR) || (obj->t == JT_LIST && obj->tuple == JV_GEN))
        FAIL_TYPE(c, "'%s' object is not subscriptable", lg_jv_typename(obj));
    if (st == 0)
        FAIL_TYPE(c, "slice step cannot be zero");
    if (obj->t == JT_STR)
        offs = cp_offsets(c, obj->u.s, obj->n, &n);
    else
        n = obj->u.l->n;
    len = (int64_t)n;
    /* PySlice_AdjustIndices */
    a = slice_arg(c, start, st < 0 ? len - 1 : 0);
    z = slice_arg(c, stop, st < 0 ? -1 - len : len);
    if (start && start->t != JT_NONE && start->t != JT_UNDEF) {
        if (a < 0)
            a = a + len < 0 ? (st < 0 ? -1 : 0) : a + len;
        else if (a >= len)
            a = st < 0 ? len - 1 : len;
    }
    if (stop && stop->t != JT_NONE && stop->t != JT_UNDEF) {
        if (z < 0)
            z = z + len < 0 ? (st < 0 ? -1 : 0) : z + len;
        else if (z >= len)
            z = st < 0 ? len - 1 : len;
    } else {
        z = st < 0 ? -1 : len;
    }
    for (i = a; st > 0 ? i < z : i > z; i += st)
        cnt++;
    if (obj->t == JT_LIST) {
        r = lg_jlist_make(c, (size_t)cnt);
        r.tuple = obj->tuple;
        for (i = a, cnt = 0; st > 0 ? i < z : i > z; i += st)
            r.u.l->v[cnt++] = obj->u.l->v[i];
        return r;
    } else {
        struct jbuf b = {0};
        for (i = a; st > 0 ? i < z : i > z; i += st)
            lg_jbuf_put(c, &b, obj->u.s + offs[i], offs[i + 1] - offs[i]);
        return buf_str(&b);
    }
}

/* ---- operators ---- */
static int cmp_values(struct jctx *c, const struct jv *a, const struct jv *b, const char *op) {
    if (a->t == JT_UNDEF)
        fail_undef(c, a);
    if (b->t == JT_UNDEF)
        fail_undef(c, b);
    if (is_num(a) && is_num(b)) {
        if (a->t == JT_FLOAT || b->t == JT_FLOAT) {
            double x = num_f(a), y = num_f(b);
            return (x > y) - (x < y);
        }
        return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    }
    if (a->t == JT_STR && b->t == JT_STR) {
        int r = memcmp(a->u.s, b->u.s, LG_MIN(a->n, b->n));
        return r ? (r > 0) - (r < 0) : (a->n > b->n) - (a->n < b->n);
    }
    if (a->t == JT_LIST && b->t == JT_LIST && a->tuple == b->tuple && a->tuple != JV_GEN) {
        size_t i;
        for (i = 0; i < a->u.l->n && i < b->u.l->n; i++)
            if (!lg_jv_eq(&a->u.l->v[i], &b->u.l->v[i])) {
                int r;
                if (++c->depth > c->lim.max_depth)
                    FAIL_UNSUP(c, "value nested too deeply to compare");
                r = cmp_values(c, &a->u.l->v[i], &b->u.l->v[i], op);
                c->depth--;
                return r;
            }
        return (a->u.l->n > b->u.l->n) - (a->u.l->n < b->u.l->n);
    }
    FAIL_TYPE(c, "'%s' not supported between instances of '%s' and '%s'", op, lg_jv_typename(a),
              lg_jv_typename(b));
}

/* First occurrence of nd[0..m) in hay[from..n), or SIZE_MAX: linear (memmem), charged. */
static size_t find_at(struct jctx *c, const char *hay, size_t n, size_t from, const char *nd, size_t m) {
    const char *p;
    if (from > n || m > n - from)
        return SIZE_MAX;
    if (!m)
        return from;
    p = memmem(hay + from, n - from, nd, m);
    lg_jinja_work(c, ((p ? (size_t)(p - hay) + m : n) - from) >> 8);
    return p ? (size_t)(p - hay) : SIZE_MAX;
}

static char *reversed(struct jctx *c, const char *s, size_t n) {
    char *r = lg_jinja_alloc(c, n + 1);
    size_t i;
    for (i = 0; i < n; i++)
        r[i] = s[n - 1 - i];
    return r;
}

/* Last occurrence of a needle ending at or before end, searched forward in the reversed
 * text rev (length n) for the reversed needle rnd (length m). */
static size_t rfind_before(struct jctx *c, const char *rev, size_t n, size_t end, const char *rnd,
                           size_t m) {
    size_t q = find_at(c, rev, n, n - end, rnd, m);
    return q == SIZE_MAX ? SIZE_MAX : n - q - m;
}

static int contains(struct jctx *c, const struct jv *hay, const struct jv *needle) {
    size_t i;
    switch (hay->t) {
    case JT_STR:
        if (needle->t == JT_UNDEF)
            fail_undef(c, needle);
        if (needle->t != JT_STR)
            FAIL_TYPE(c, "'in <string>' requires string as left operand, not %s",
                      lg_jv_typename(needle));
        return find_at(c, hay->u.s, hay->n, 0, needle->u.s, needle->n) != SIZE_MAX;
    case JT_LIST:
        for (i = 0; i < hay->u.l->n; i++)
            if (lg_jv_eq(&hay->u.l->v[i], needle))
                return 1;
        return 0;
    case JT_DICT:
    case JT_NS:
        if ((needle->t == JT_LIST && needle->tuple != 1) || needle->t == JT_DICT || needle->t == JT_NS)
            FAIL_TYPE(c, "unhashable type: '%s'", lg_jv_typename(needle));
        return dict_find(hay->u.d, needle) != NULL;
    case JT_UNDEF: return 0;
    default: FAIL_TYPE(c, "argument of type '%s' is not iterable", lg_jv_typename(hay));
    }
}

static struct jv repeat(struct jctx *c, const struct jv *seq, int64_t times) {
    size_t i, k, n = seq->t == JT_STR ? seq->n : seq->u.l->n, total;
    if (times < 0)
        times = 0;
    if (lg_mul_size(n, (size_t)times, &total) || total > c->lim.max_bytes)
        FAIL_UNSUP(c, "repetition too large");
    if (seq->t == JT_STR) {
        char *p = lg_jinja_alloc(c, total + 1);
        for (i = 0; i < (size_t)times; i++)
            memcpy(p + i * n, seq->u.s, n);
        return lg_jv_str(p, total);
    } else {
        struct jv r = lg_jlist_make(c, total);
        r.tuple = seq->tuple;
        for (i = 0; i < (size_t)times; i++)
            for (k = 0; k < n; k++)
                r.u.l->v[i * n + k] = seq->u.l->v[k];
        return r;
    }
}

static const char *op_name(int op) {
    static const char *const names[] = {"?", "+", "-", "*", "/", "//", "%", "**", "~",
                                        "==", "!=", "<", "<=", ">", ">=", "in", "not in"};
    return op > 0 && op < (int)LG_ARRAY_LEN(names) ? names[op] : "?";
}

static double py_fmod(double x, double y) {
    double m = fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0)))
        m += y;
    return m;
}

/* CPython's float_floor_div */
static double py_floordiv(double vx, double wx) {
    double mod = fmod(vx, wx), div = (vx - mod) / wx, fd;
    if (mod != 0 && ((wx < 0) != (mod < 0)))
        div -= 1.0;
    if (div != 0) {
        fd = floor(div);
        if (div - fd > 0.5)
            fd += 1.0;
    } else {
        fd = copysign(0.0, vx / wx);
    }
    return fd;
}

struct jv lg_jv_binop(struct jctx *c, int op, const struct jv *a, const struct jv *b) {
    int64_t r;
    switch (op) {
    case JO_EQ: return lg_jv_bool(lg_jv_eq(a, b));
    case JO_NE: return lg_jv_bool(!lg_jv_eq(a, b));
    case JO_LT: return lg_jv_bool(cmp_values(c, a, b, "<") < 0);
    case JO_LE: return lg_jv_bool(cmp_values(c, a, b, "<=") <= 0);
    case JO_GT: return lg_jv_bool(cmp_values(c, a, b, ">") > 0);
    case JO_GE: return lg_jv_bool(cmp_values(c, a, b, ">=") >= 0);
    case JO_IN: return lg_jv_bool(contains(c, b, a));
    case JO_NOTIN: return lg_jv_bool(!contains(c, b, a));
    case JO_CONCAT: {
        struct jbuf buf = {0};
        lg_jv_write_str(c, &buf, a);
        lg_jv_write_str(c, &buf, b);
        return buf_str(&buf);
    }
    default: break;
    }
    if (op == JO_MOD && a->t == JT_STR)
        return lg_jv_percent(c, a, b); /* str % Undefined formats '' */
    if (a->t == JT_UNDEF)
        fail_undef(c, a);
    if (b->t == JT_UNDEF)
        fail_undef(c, b);
    if (is_num(a) && is_num(b)) {
        int fl = a->t == JT_FLOAT || b->t == JT_FLOAT;
        double x = num_f(a), y = num_f(b);
        int64_t i = a->u.i, j = b->u.i;
        switch (op) {
        case JO_ADD:
            if (fl)
                return jv_float(x + y);
            if (__builtin_add_overflow(i, j, &r))
                break;
            return lg_jv_int(r);
        case JO_SUB:
            if (fl)
                return jv_float(x - y);
            if (__builtin_sub_overflow(i, j, &r))
                break;
            return lg_jv_int(r);
        case JO_MUL:
            if (fl)
                return jv_float(x * y);
            if (__builtin_mul_overflow(i, j, &r))
                break;
            return lg_jv_int(r);
        case JO_DIV:
            if (y == 0)
                FAIL_TYPE(c, "division by zero");
            return jv_float(x / y);
        case JO_FLOORDIV:
        case JO_MOD:
            if (y == 0)
                FAIL_TYPE(c, "integer division or modulo by zero");
            if (fl)
                return jv_float(op == JO_MOD ? py_fmod(x, y) : py_floordiv(x, y));
            if (i == INT64_MIN && j == -1)
                break;
            {
                int64_t q = i / j, m = i % j;
                if (m != 0 && ((m < 0) != (j < 0))) {
                    q--;
                    m += j;
                }
                return lg_jv_int(op == JO_MOD ? m : q);
            }
        case JO_POW:
            if (!fl && j >= 0) {
                int64_t acc = 1, base = i, e = j;
                while (e) {
                    if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                        goto overflow;
                    e >>= 1;
                    if (e && __builtin_mul_overflow(base, base, &base))
                        goto overflow;
                }
                return lg_jv_int(acc);
            }
            if (x == 0 && y < 0)
                FAIL_TYPE(c, "0.0 cannot be raised to a negative power");
            return jv_float(pow(x, y));
        default: break;
        }
    overflow:
        FAIL_UNSUP(c, "integer overflow in '%s' (Python integers are unbounded; this renderer's are 64-bit)",
                   op_name(op));
    }
    if (op == JO_ADD && a->t == JT_STR && b->t == JT_STR) {
        char *p;
        size_t n;
        if (lg_add_size(a->n, b->n, &n))
            FAIL_UNSUP(c, "string too large");
        p = lg_jinja_alloc(c, n + 1);
        memcpy(p, a->u.s, a->n);
        memcpy(p + a->n, b->u.s, b->n);
        return lg_jv_str(p, n);
    }
    if (op == JO_ADD && a->t == JT_LIST && b->t == JT_LIST && a->tuple == b->tuple &&
        a->tuple != JV_GEN) {
        struct jv res = lg_jlist_make(c, a->u.l->n + b->u.l->n);
        res.tuple = a->tuple;
        if (a->u.l->n)
            memcpy(res.u.l->v, a->u.l->v, a->u.l->n * sizeof *res.u.l->v);
        if (b->u.l->n)
            memcpy(res.u.l->v + a->u.l->n, b->u.l->v, b->u.l->n * sizeof *res.u.l->v);
        return res;
    }
    if (op == JO_MUL && (a->t == JT_STR || (a->t == JT_LIST && a->tuple != JV_GEN)) &&
        (b->t == JT_INT || b->t == JT_BOOL))
        return repeat(c, a, b->u.i);
    if (op == JO_MUL && (b->t == JT_STR || (b->t == JT_LIST && b->tuple != JV_GEN)) &&
        (a->t == JT_INT || a->t == JT_BOOL))
        return repeat(c, b, a->u.i);
    if (op == JO_MOD && a->t == JT_STR)
        return lg_jv_percent(c, a, b);
    FAIL_TYPE(c, "unsupported operand type(s) for %s: '%s' and '%s'", op_name(op),
              lg_jv_typename(a), lg_jv_typename(b));
}

/* ---- printf-style formatting (str % args) ---- */
static void pad_put(struct jctx *c, struct jbuf *b, const char *s, size_t n, int width, int left) {
    size_t w = cp_count(s, n), k;
    if (!left)
        for (k = w; (int)k < width; k++)
            put_s(c, b, " ");
    lg_jbuf_put(c, b, s, n);
    if (left)
        for (k = w; (int)k < width; k++)
            put_s(c, b, " ");
}

struct jv lg_jv_percent(struct jctx *c, const struct jv *fmt, const struct jv *args) {
    struct jbuf b = {0};
    const char *s = fmt->u.s;
    size_t n = fmt->n, i = 0, next = 0, nargs;
    const struct jv *argv;
    /* Python: a non-tuple argument with __getitem__ (dict, list, Undefined) counts as a
     * mapping, which excuses unused arguments; positional specs then format it whole */
    int mapping = args->t == JT_DICT || args->t == JT_NS || args->t == JT_UNDEF ||
                  (args->t == JT_LIST && args->tuple != 1);
    if (args->t == JT_LIST && args->tuple == 1) {
        argv = args->u.l->v;
        nargs = args->u.l->n;
    } else {
        argv = args;
        nargs = 1;
    }
    while (i < n) {
        const char *pc = memchr(s + i, '%', n - i);
        size_t at = pc ? (size_t)(pc - s) : n;
        char flags[8], spec[64], num[512], type;
        int nf = 0, width = -1, prec = -1, left = 0;
        struct jv v;
        lg_jbuf_put(c, &b, s + i, at - i);
        if (at >= n)
            break;
        i = at + 1;
        if (i < n && s[i] == '%') {
            put_s(c, &b, "%");
            i++;
            continue;
        }
        if (i < n && s[i] == '(') {
            /* %(name)s: a key of the mapping */
            size_t e = i + 1;
            const struct jv *found;
            while (e < n && s[e] != ')')
                e++;
            if (e >= n)
                FAIL_TYPE(c, "incomplete format key");
            if (args->t != JT_DICT && args->t != JT_NS)
                FAIL_TYPE(c, "format requires a mapping");
            found = lg_jdict_get(args->u.d, s + i + 1, e - i - 1);
            if (!found)
                FAIL_TYPE(c, "KeyError: '%.*s'", (int)LG_MIN(e - i - 1, 64), s + i + 1);
            v = *found;
            i = e + 1;
        } else {
            v.t = JT_UNDEF;
        }
        while (i < n && strchr("-+ #0", s[i]) && nf < 6) {
            left |= s[i] == '-';
            flags[nf++] = s[i++];
        }
        flags[nf] = 0;
        if (i < n && (s[i] == '*'))
            FAIL_UNSUP(c, "unsupported: '*' width in printf-style formatting");
        while (i < n && s[i] >= '0' && s[i] <= '9' && width < 1000)
            width = (width < 0 ? 0 : width * 10) + (s[i++] - '0');
        if (i < n && s[i] == '.') {
            prec = 0;
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9' && prec < 1000)
                prec = prec * 10 + (s[i++] - '0');
        }
        while (i < n && (s[i] == 'l' || s[i] == 'h' || s[i] == 'L'))
            i++;
        if (i >= n)
            FAIL_TYPE(c, "incomplete format");
        type = s[i++];
        if (s[at + 1] != '(') {
            if (next >= nargs)
                FAIL_TYPE(c, "not enough arguments for format string");
            v = argv[next++];
        }
        switch (type) {
        case 's':
        case 'r':
        case 'a': {
            struct jbuf t = {0};
            if (type == 's')
                lg_jv_write_str(c, &t, &v);
            else
                write_repr(c, &t, &v);
            if (prec >= 0 && t.n) {
                size_t k = 0, cps = 0;
                while (k < t.n && (int)cps < prec) {
                    k += cp_len(t.p, t.n, k);
                    cps++;
                }
                t.n = k;
            }
            pad_put(c, &b, t.p ? t.p : "", t.n, width, left);
            break;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
        case 'c': {
            int64_t iv;
            if (v.t == JT_FLOAT && type != 'c' && fabs(v.u.f) < 9.2e18)
                iv = (int64_t)v.u.f;
            else if (v.t == JT_INT || v.t == JT_BOOL)
                iv = v.u.i;
            else
                FAIL_TYPE(c, "%%%c format: a number is required, not %s", type, lg_jv_typename(&v));
            if (type == 'c') {
                char enc[8];
                size_t k = 0;
                if (iv < 0 || iv > 0x10FFFF)
                    FAIL_TYPE(c, "%%c arg not in range(0x110000)");
                k = (size_t)utf8proc_encode_char((int32_t)iv, (uint8_t *)enc);
                pad_put(c, &b, enc, k, width, left);
                break;
            }
            snprintf(spec, sizeof spec, "%%%s%s%sll%c", flags, width >= 0 ? "*" : "",
                     prec >= 0 ? ".*" : "", type == 'i' || type == 'u' ? 'd' : type);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            if (width >= 0 && prec >= 0)
                snprintf(num, sizeof num, spec, width, prec, (long long)iv);
            else if (width >= 0)
                snprintf(num, sizeof num, spec, width, (long long)iv);
            else if (prec >= 0)
                snprintf(num, sizeof num, spec, prec, (long long)iv);
            else
                snprintf(num, sizeof num, spec, (long long)iv);
#pragma GCC diagnostic pop
            put_s(c, &b, num);
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            double f;
            if (!is_num(&v))
                FAIL_TYPE(c, "must be real number, not %s", lg_jv_typename(&v));
            f = num_f(&v);
            snprintf(spec, sizeof spec, "%%%s%s.*%c", flags, width >= 0 ? "*" : "", type);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            if (width >= 0)
                snprintf(num, sizeof num, spec, width, prec >= 0 ? prec : 6, f);
            else
                snprintf(num, sizeof num, spec, prec >= 0 ? prec : 6, f);
#pragma GCC diagnostic pop
            put_s(c, &b, num);
            break;
        }
        default: FAIL_UNSUP(c, "unsupported format character '%c' in printf-style formatting", type);
        }
    }
    if (!mapping && next < nargs)
        FAIL_TYPE(c, "not all arguments converted during string formatting");
    return buf_str(&b);
}

/* ---- arguments of filters, tests, methods and functions ---- */
static const struct jv *arg(const struct jarg *args, size_t nargs, size_t pos, const char *name) {
    size_t i, k = 0;
    for (i = 0; i < nargs; i++) {
        if (args[i].name) {
            if (name && args[i].nlen == strlen(name) && memcmp(args[i].name, name, args[i].nlen) == 0)
                return &args[i].v;
        } else if (k++ == pos) {
            return &args[i].v;
        }
    }
    return NULL;
}

/* Fail on keyword arguments that are not in the list, and on too many positionals. */
static void check_args(struct jctx *c, const char *what, const char *name, size_t n,
                       const struct jarg *args, size_t nargs, size_t max_pos,
                       const char *const *kw) {
    size_t i, npos = 0, k;
    for (i = 0; i < nargs; i++) {
        if (!args[i].name) {
            npos++;
            continue;
        }
        for (k = 0; kw && kw[k]; k++)
            if (args[i].nlen == strlen(kw[k]) && memcmp(args[i].name, kw[k], args[i].nlen) == 0)
                break;
        if (!kw || !kw[k])
            FAIL_UNSUP(c, "unsupported: argument '%.*s' of %s '%.*s'", (int)LG_MIN(args[i].nlen, 64),
                       args[i].name, what, (int)n, name);
    }
    if (npos > max_pos)
        FAIL_TYPE(c, "%s '%.*s' takes at most %zu positional arguments (%zu given)", what, (int)n,
                  name, max_pos, npos);
}

static struct jv need_str(struct jctx *c, const struct jv *v, const char *what) {
    if (!v || v->t != JT_STR)
        FAIL_TYPE(c, "%s: expected a string, got %s", what, v ? lg_jv_typename(v) : "nothing");
    return *v;
}

static int64_t need_int(struct jctx *c, const struct jv *v, const char *what) {
    if (!v || (v->t != JT_INT && v->t != JT_BOOL))
        FAIL_TYPE(c, "%s: expected an integer, got %s", what, v ? lg_jv_typename(v) : "nothing");
    return v->u.i;
}

/* ---- string operations ---- */
static int in_chars(struct jctx *c, const struct jv *chars, const char *s, size_t len) {
    size_t i = 0;
    int found = 0;
    while (i < chars->n) {
        size_t l = cp_len(chars->u.s, chars->n, i);
        if (l == len && memcmp(chars->u.s + i, s, len) == 0) {
            found = 1;
            break;
        }
        i += l;
    }
    lg_jinja_work(c, i >> 6);
    return found;
}

/* str.strip / lstrip / rstrip (which: 1 left, 2 right, 3 both), chars NULL/None: whitespace. */
static struct jv strip(struct jctx *c, struct jv s, const struct jv *chars, int which) {
    const char *p = s.u.s;
    size_t a = 0, z = s.n;
    if (chars && chars->t != JT_NONE) {
        need_str(c, chars, "strip");
        if (which & 1)
            while (a < z) {
                size_t l = cp_len(p, z, a);
                if (!in_chars(c, chars, p + a, l))
                    break;
                a += l;
            }
        if (which & 2)
            while (z > a) {
                size_t st = z - 1;
                while (st > a && ((unsigned char)p[st] & 0xC0) == 0x80)
                    st--;
                if (!in_chars(c, chars, p + st, z - st))
                    break;
                z = st;
            }
    } else {
        if (which & 1)
            a = lg_jinja_lspace(p, z);
        if (which & 2)
            z -= lg_jinja_rspace(p + a, z - a);
    }
    return lg_jv_str(p + a, z - a);
}

static struct jv casemap(struct jctx *c, struct jv s, int mode) {
    /* mode 0 lower, 1 upper, 2 capitalize, 3 Jinja's title filter, 4 Python's str.title() */
    struct jbuf b = {0};
    size_t i = 0;
    int word_start = 1, first = 1;
    while (i < s.n) {
        size_t len;
        int32_t cp = cp_decode(s.u.s + i, s.n - i, &len), m;
        uint8_t enc[4];
        utf8proc_ssize_t el;
        if (cp < 0) {
            lg_jbuf_put(c, &b, s.u.s + i, len);
            i += len;
            continue;
        }
        if (mode == 0)
            m = utf8proc_tolower(cp);
        else if (mode == 1)
            m = utf8proc_toupper(cp);
        else if (mode == 2)
            m = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
        else if (mode == 4) {
            /* Python's str.title(): a cased character after an uncased one starts a word */
            utf8proc_category_t cat = utf8proc_category(cp);
            int cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
                        cat == UTF8PROC_CATEGORY_LT;
            m = !cased ? cp : word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
            word_start = !cased;
        } else {
            /* jinja2.filters.do_title: words split at runs of [-\s({[<] */
            int sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' ||
                      lg_jinja_lspace(s.u.s + i, len) == len;
            m = sep ? cp : word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
            word_start = sep;
        }
        first = 0;
        el = utf8proc_encode_char(m, enc);
        lg_jbuf_put(c, &b, (const char *)enc, (size_t)el);
        i += len;
    }
    return buf_str(&b);
}

static struct jv replace(struct jctx *c, struct jv s, struct jv old, struct jv rep, int64_t count) {
    struct jbuf b = {0};
    size_t i = 0;
    int64_t done = 0;
    if (!old.n) {
        /* Python inserts rep between characters (and at both ends) */
        while (i <= s.n && (count < 0 || done < count)) {
            lg_jbuf_put(c, &b, rep.u.s, rep.n);
            done++;
            if (i == s.n) {
                i++;
                break;
            }
            {
                size_t l = cp_len(s.u.s, s.n, i);
                lg_jbuf_put(c, &b, s.u.s + i, l);
                i += l;
            }
        }
        if (i < s.n)
            lg_jbuf_put(c, &b, s.u.s + i, s.n - i);
        return buf_str(&b);
    }
    while (i < s.n) {
        size_t pos = count < 0 || done < count ? find_at(c, s.u.s, s.n, i, old.u.s, old.n) : SIZE_MAX;
        if (pos == SIZE_MAX) {
            lg_jbuf_put(c, &b, s.u.s + i, s.n - i);
            break;
        }
        lg_jbuf_put(c, &b, s.u.s + i, pos - i);
        lg_jbuf_put(c, &b, rep.u.s, rep.n);
        i = pos + old.n;
        done++;
    }
    return buf_str(&b);
}

static struct jv list_push(struct jctx *c, struct jv *l, size_t *cap, struct jv item) {
    if (l->u.l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        struct jv *nv = lg_jinja_alloc(c, nc * sizeof *nv);
        if (l->u.l->n)
            memcpy(nv, l->u.l->v, l->u.l->n * sizeof *nv);
        l->u.l->v = nv;
        *cap = nc;
    }
    l->u.l->v[l->u.l->n++] = item;
    return *l;
}

/* str.split(sep=None, maxsplit=-1); rsplit with from_right (only with a separator). */
static struct jv split(struct jctx *c, struct jv s, const struct jv *sep, int64_t maxsplit,
                       int from_right) {
    struct jv out = lg_jlist_make(c, 0);
    size_t cap = 0, i = 0;
    int64_t done = 0;
    if (!sep || sep->t == JT_NONE) {
        if (from_right)
            FAIL_UNSUP(c, "unsupported: rsplit() without a separator");
        for (;;) {
            size_t st;
            i += lg_jinja_lspace(s.u.s + i, s.n - i);
            if (i >= s.n)
                break;
            if (maxsplit >= 0 && done >= maxsplit) {
                struct jv rest = lg_jv_str(s.u.s + i, s.n - i);
                rest.n -= lg_jinja_rspace(rest.u.s, rest.n);
                list_push(c, &out, &cap, rest);
                break;
            }
            st = i;
            while (i < s.n) {
                size_t l = cp_len(s.u.s, s.n, i);
                if (lg_jinja_lspace(s.u.s + i, l) == l)
                    break;
                i += l;
            }
            list_push(c, &out, &cap, lg_jv_str(s.u.s + st, i - st));
            done++;
        }
        return out;
    }
    need_str(c, sep, "split");
    if (!sep->n)
        FAIL_TYPE(c, "empty separator");
    if (from_right) {
        size_t end = s.n;
        struct jv tmp = lg_jlist_make(c, 0);
        size_t tcap = 0;
        int64_t j;
        char *rs = reversed(c, s.u.s, s.n), *rsep = reversed(c, sep->u.s, sep->n);
        for (;;) {
            size_t pos = SIZE_MAX;
            if (maxsplit < 0 || done < maxsplit)
                pos = rfind_before(c, rs, s.n, end, rsep, sep->n);
            if (pos == SIZE_MAX) {
                list_push(c, &tmp, &tcap, lg_jv_str(s.u.s, end));
                break;
            }
            list_push(c, &tmp, &tcap, lg_jv_str(s.u.s + pos + sep->n, end - pos - sep->n));
            end = pos;
            done++;
        }
        for (j = (int64_t)tmp.u.l->n - 1; j >= 0; j--)
            list_push(c, &out, &cap, tmp.u.l->v[j]);
        return out;
    }
    for (;;) {
        size_t pos = SIZE_MAX;
        if (maxsplit < 0 || done < maxsplit)
            pos = find_at(c, s.u.s, s.n, i, sep->u.s, sep->n);
        if (pos == SIZE_MAX) {
            list_push(c, &out, &cap, lg_jv_str(s.u.s + i, s.n - i));
            break;
        }
        list_push(c, &out, &cap, lg_jv_str(s.u.s + i, pos - i));
        i = pos + sep->n;
        done++;
    }
    return out;
}

static int starts_or_ends(struct jctx *c, struct jv s, const struct jv *what, int end) {
    size_t i;
    if (what && what->t == JT_LIST && what->tuple == 1) {
        for (i = 0; i < what->u.l->n; i++)
            if (starts_or_ends(c, s, &what->u.l->v[i], end))
                return 1;
        return 0;
    }
    need_str(c, what, end ? "endswith" : "startswith");
    if (what->n > s.n)
        return 0;
    return memcmp(end ? s.u.s + s.n - what->n : s.u.s, what->u.s, what->n) == 0;
}

static struct jv join(struct jctx *c, const struct jv *seq, struct jv sep, const struct jv *attr) {
    struct jlist *l = lg_jv_iter(c, seq);
    struct jbuf b = {0};
    size_t i;
    for (i = 0; i < l->n; i++) {
        struct jv item = l->v[i];
        if (i)
            lg_jbuf_put(c, &b, sep.u.s, sep.n);
        if (attr)
            item = attr->t == JT_STR ? lg_jv_getattr(c, &item, attr->u.s, attr->n)
                                     : lg_jv_getitem(c, &item, attr);
        lg_jv_write_str(c, &b, &item);
    }
    return buf_str(&b);
}

static struct jv html_escape(struct jctx *c, struct jv s) {
    struct jbuf b = {0};
    size_t i;
    for (i = 0; i < s.n; i++) {
        switch (s.u.s[i]) {
        case '&': put_s(c, &b, "&amp;"); break;
        case '<': put_s(c, &b, "&lt;"); break;
        case '>': put_s(c, &b, "&gt;"); break;
        case '"': put_s(c, &b, "&#34;"); break;
        case '\'': put_s(c, &b, "&#39;"); break;
        default: lg_jbuf_put(c, &b, s.u.s + i, 1);
        }
    }
    return buf_str(&b);
}

/* Python int(str) for the int filter: optional sign, digits (underscores between). */
static int parse_int(const char *s, size_t n, int64_t *out) {
    char buf[64];
    size_t a = lg_jinja_lspace(s, n), z = n - lg_jinja_rspace(s, n), k = 0, i;
    char *end;
    if (a >= z || z - a >= sizeof buf)
        return 0;
    for (i = a; i < z; i++)
        if (s[i] != '_')
            buf[k++] = s[i];
    buf[k] = 0;
    if (!k || (buf[0] != '-' && buf[0] != '+' && (buf[0] < '0' || buf[0] > '9')))
        return 0;
    *out = strtoll(buf, &end, 10);
    return *end == 0;
}

static int parse_float(const char *s, size_t n, double *out) {
    char buf[64];
    size_t a = lg_jinja_lspace(s, n), z = n - lg_jinja_rspace(s, n);
    char *end;
    if (a >= z || z - a >= sizeof buf)
        return 0;
    memcpy(buf, s + a, z - a);
    buf[z - a] = 0;
    *out = strtod(buf, &end);
    return *end == 0;
}

/* ---- tests ---- */
#define NAME_IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)

int lg_jinja_test(struct jctx *c, const char *name, size_t n, const struct jv *v,
                  const struct jarg *args, size_t nargs) {
    const struct jv *a0 = arg(args, nargs, 0, NULL);
    if (NAME_IS("defined"))
        return v->t != JT_UNDEF;
    if (NAME_IS("undefined"))
        return v->t == JT_UNDEF;
    if (NAME_IS("none"))
        return v->t == JT_NONE;
    if (NAME_IS("string"))
        return v->t == JT_STR;
    if (NAME_IS("number"))
        return is_num(v);
    if (NAME_IS("integer"))
        return v->t == JT_INT;
    if (NAME_IS("float"))
        return v->t == JT_FLOAT;
    if (NAME_IS("boolean"))
        return v->t == JT_BOOL;
    if (NAME_IS("true"))
        return v->t == JT_BOOL && v->u.i;
    if (NAME_IS("false"))
        return v->t == JT_BOOL && !v->u.i;
    if (NAME_IS("mapping"))
        return v->t == JT_DICT;
    if (NAME_IS("iterable"))
        return v->t == JT_STR || v->t == JT_LIST || v->t == JT_DICT || v->t == JT_UNDEF;
    if (NAME_IS("sequence"))
        return v->t == JT_STR || (v->t == JT_LIST && v->tuple != JV_GEN) || v->t == JT_DICT ||
               v->t == JT_UNDEF;
    if (NAME_IS("callable"))
        return v->t == JT_MACRO || v->t == JT_FUNC;
    if (NAME_IS("odd") || NAME_IS("even") || NAME_IS("divisibleby")) {
        /* value % 2 == 1, value % 2 == 0, value % num == 0 with Python's operators */
        struct jv two = lg_jv_int(2), m;
        if (NAME_IS("divisibleby") && !a0)
            FAIL_TYPE(c, "test 'divisibleby' needs an argument");
        m = lg_jv_binop(c, JO_MOD, v, NAME_IS("divisibleby") ? a0 : &two);
        two = lg_jv_int(NAME_IS("odd") ? 1 : 0);
        return lg_jv_eq(&m, &two);
    }
    if (NAME_IS("lower") || NAME_IS("upper")) {
        /* str.islower() / isupper(): some cased character and none of the other case */
        struct jv s = lg_jv_to_str(c, v);
        size_t i = 0;
        int cased = 0, lower = NAME_IS("lower");
        while (i < s.n) {
            size_t len;
            int32_t cp = cp_decode(s.u.s + i, s.n - i, &len);
            utf8proc_category_t cat = cp < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(cp);
            if (cat == UTF8PROC_CATEGORY_LT || cat == (lower ? UTF8PROC_CATEGORY_LU : UTF8PROC_CATEGORY_LL))
                return 0;
            cased |= cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LU;
            i += len;
        }
        return cased;
    }
    if (!a0 && (NAME_IS("eq") || NAME_IS("equalto") || NAME_IS("==") || NAME_IS("sameas") ||
                NAME_IS("ne") || NAME_IS("!=") || NAME_IS("lt") || NAME_IS("le") ||
                NAME_IS("gt") || NAME_IS("ge") || NAME_IS("in")))
        FAIL_TYPE(c, "test '%.*s' needs an argument", (int)n, name);
    if (NAME_IS("eq") || NAME_IS("equalto") || NAME_IS("=="))
        return lg_jv_eq(v, a0);
    if (NAME_IS("sameas"))
        return v->t == a0->t && lg_jv_eq(v, a0);
    if (NAME_IS("ne") || NAME_IS("!="))
        return !lg_jv_eq(v, a0);
    if (NAME_IS("lt") || NAME_IS("lessthan") || NAME_IS("<"))
        return cmp_values(c, v, a0, "<") < 0;
    if (NAME_IS("le") || NAME_IS("<="))
        return cmp_values(c, v, a0, "<=") <= 0;
    if (NAME_IS("gt") || NAME_IS("greaterthan") || NAME_IS(">"))
        return cmp_values(c, v, a0, ">") > 0;
    if (NAME_IS("ge") || NAME_IS(">="))
        return cmp_values(c, v, a0, ">=") >= 0;
    if (NAME_IS("in"))
        return contains(c, a0, v);
    FAIL_UNSUP(c, "unsupported test '%.*s'", (int)LG_MIN(n, 64), name);
}

/* ---- filters ---- */
static struct jv do_map_item(struct jctx *c, const struct jv *item, const struct jarg *args,
                             size_t nargs) {
    const struct jv *attr = arg(args, nargs, 99, "attribute");
    if (attr) {
        struct jv r = attr->t == JT_STR ? lg_jv_getattr(c, item, attr->u.s, attr->n)
                                        : lg_jv_getitem(c, item, attr);
        const struct jv *dflt = arg(args, nargs, 99, "default");
        if (r.t == JT_UNDEF && dflt)
            return *dflt;
        return r;
    }
    {
        struct jv fname = need_str(c, arg(args, nargs, 0, NULL), "map");
        return lg_jinja_filter(c, fname.u.s, fname.n, item, args + 1, nargs - 1);
    }
}

static int select_item(struct jctx *c, const struct jv *item, const struct jarg *args, size_t nargs,
                       int by_attr) {
    struct jv v = *item;
    const struct jv *t;
    if (by_attr) {
        struct jv an = need_str(c, arg(args, nargs, 0, NULL), "selectattr");
        v = lg_jv_getattr(c, item, an.u.s, an.n);
        args++;
        nargs--;
    }
    t = arg(args, nargs, 0, NULL);
    if (!t)
        return lg_jv_truthy(&v);
    need_str(c, t, "select");
    return lg_jinja_test(c, t->u.s, t->n, &v, args + 1, nargs - 1);
}

struct jsort {
    struct jv key;
    size_t idx;
};
/* Stable merge sort (cmp_values may leave by longjmp, so no qsort). */
static void sort_items(struct jctx *c, struct jsort *v, struct jsort *tmp, size_t n) {
    size_t mid = n / 2, i = 0, j, k = 0;
    if (n < 2)
        return;
    sort_items(c, v, tmp, mid);
    sort_items(c, v + mid, tmp, n - mid);
    j = mid;
    while (i < mid && j < n)
        tmp[k++] = cmp_values(c, &v[j].key, &v[i].key, "<") < 0 ? v[j++] : v[i++];
    while (i < mid)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* A generator that raises when consumed: Jinja's lazy filters check their input only then. */
static struct jv lazy_error(struct jctx *c, const char *msg) {
    struct jv r = lg_jlist_make(c, 0);
    r.tuple = JV_GEN;
    r.n = 1; /* poisoned: u.l->v[0] (outside u.l->n) holds the message */
    r.u.l->v = lg_jinja_alloc(c, sizeof *r.u.l->v);
    r.u.l->v[0] = lg_jv_str(msg, strlen(msg));
    return r;
}

struct jv lg_jinja_filter(struct jctx *c, const char *name, size_t n, const struct jv *v,
                          const struct jarg *args, size_t nargs) {
    const struct jv *a0 = arg(args, nargs, 0, NULL);
    if (NAME_IS("trim")) {
        static const char *const kw[] = {"chars", NULL};
        check_args(c, "filter", name, n, args, nargs, 1, kw);
        return strip(c, lg_jv_to_str(c, v), arg(args, nargs, 0, "chars"), 3);
    }
    if (NAME_IS("length") || NAME_IS("count")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        switch (v->t) {
        case JT_STR: return lg_jv_int((int64_t)cp_count(v->u.s, v->n));
        case JT_LIST:
            if (v->tuple == JV_GEN)
                FAIL_TYPE(c, "object of type 'generator' has no len()");
            return lg_jv_int((int64_t)v->u.l->n);
        case JT_DICT: return lg_jv_int((int64_t)v->u.d->n);
        case JT_UNDEF: return lg_jv_int(0);
        default: FAIL_TYPE(c, "object of type '%s' has no len()", lg_jv_typename(v));
        }
    }
    if (NAME_IS("tojson")) {
        static const char *const kw[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
        struct jjson o;
        struct jbuf b = {0};
        const struct jv *ind = arg(args, nargs, 1, "indent"), *sep = arg(args, nargs, 2, "separators");
        const struct jv *ea = arg(args, nargs, 0, "ensure_ascii"), *sk = arg(args, nargs, 3, "sort_keys");
        check_args(c, "filter", name, n, args, nargs, 4, kw);
        o.indent = ind && ind->t != JT_NONE ? (int)need_int(c, ind, "tojson indent") : -1;
        if (o.indent > 64)
            FAIL_UNSUP(c, "tojson: indent above 64");
        if (ind && ind->t != JT_NONE && o.indent < 0)
            o.indent = 0;
        o.ensure_ascii = ea ? lg_jv_truthy(ea) : 0;
        o.sort_keys = sk ? lg_jv_truthy(sk) : 0;
        o.item_sep = lg_jv_str(o.indent >= 0 ? "," : ", ", o.indent >= 0 ? 1 : 2);
        o.key_sep = lg_jv_str(": ", 2);
        if (sep && sep->t != JT_NONE) {
            if (sep->t != JT_LIST || sep->u.l->n != 2)
                FAIL_TYPE(c, "tojson: separators must be a pair of strings");
            o.item_sep = need_str(c, &sep->u.l->v[0], "tojson separators");
            o.key_sep = need_str(c, &sep->u.l->v[1], "tojson separators");
        }
        json_dump(c, &b, v, &o, 0);
        return buf_str(&b);
    }
    if (NAME_IS("string")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        return lg_jv_to_str(c, v);
    }
    if (NAME_IS("lower") || NAME_IS("upper") || NAME_IS("capitalize") || NAME_IS("title")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        return casemap(c, lg_jv_to_str(c, v),
                       NAME_IS("lower") ? 0 : NAME_IS("upper") ? 1 : NAME_IS("capitalize") ? 2 : 3);
    }
    if (NAME_IS("default") || NAME_IS("d")) {
        static const char *const kw[] = {"default_value", "boolean", NULL};
        const struct jv *dv = arg(args, nargs, 0, "default_value"), *bo = arg(args, nargs, 1, "boolean");
        check_args(c, "filter", name, n, args, nargs, 2, kw);
        if (v->t == JT_UNDEF || (bo && lg_jv_truthy(bo) && !lg_jv_truthy(v)))
            return dv ? *dv : lg_jv_str("", 0);
        return *v;
    }
    if (NAME_IS("join")) {
        static const char *const kw[] = {"d", "attribute", NULL};
        const struct jv *d = arg(args, nargs, 0, "d");
        check_args(c, "filter", name, n, args, nargs, 2, kw);
        return join(c, v, d ? lg_jv_to_str(c, d) : lg_jv_str("", 0), arg(args, nargs, 1, "attribute"));
    }
    if (NAME_IS("first") || NAME_IS("last")) {
        struct jlist *l;
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        if (NAME_IS("last") && v->t == JT_LIST && v->tuple == JV_GEN)
            FAIL_TYPE(c, "'%s' object is not reversible", lg_jv_typename(v));
        l = lg_jv_iter(c, v);
        if (!l->n)
            return lg_jv_undef(NAME_IS("first") ? "first item" : "last item", 9);
        return NAME_IS("first") ? l->v[0] : l->v[l->n - 1];
    }
    if (NAME_IS("list")) {
        struct jlist *l;
        struct jv r;
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        l = lg_jv_iter(c, v);
        r = lg_jlist_make(c, l->n);
        if (l->n)
            memcpy(r.u.l->v, l->v, l->n * sizeof *l->v);
        return r;
    }
    if (NAME_IS("reverse")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        if (v->t == JT_STR) {
            struct jv m1 = lg_jv_int(-1);
            return lg_jv_slice(c, v, NULL, NULL, &m1);
        } else {
            struct jlist *l = lg_jv_iter(c, v);
            struct jv r = lg_jlist_make(c, l->n);
            size_t i;
            for (i = 0; i < l->n; i++)
                r.u.l->v[i] = l->v[l->n - 1 - i];
            r.tuple = JV_GEN; /* reversed(): an iterator */
            return r;
        }
    }
    if (NAME_IS("items")) {
        struct jv r;
        size_t i;
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        if (v->t == JT_UNDEF) {
            r = lg_jlist_make(c, 0);
            r.tuple = JV_GEN;
            return r;
        }
        if (v->t != JT_DICT)
            return lazy_error(c, "Can only get item pairs from a mapping.");
        r = lg_jlist_make(c, v->u.d->n);
        r.tuple = JV_GEN;
        for (i = 0; i < v->u.d->n; i++) {
            struct jv pair = lg_jlist_make(c, 2);
            pair.tuple = 1;
            pair.u.l->v[0] = v->u.d->k[i];
            pair.u.l->v[1] = v->u.d->v[i];
            r.u.l->v[i] = pair;
        }
        return r;
    }
    if ((NAME_IS("map") || NAME_IS("select") || NAME_IS("reject") || NAME_IS("selectattr") ||
         NAME_IS("rejectattr") || NAME_IS("unique") || NAME_IS("items")) &&
        v->t != JT_UNDEF && v->t != JT_STR && v->t != JT_LIST && v->t != JT_DICT) {
        /* map/select/reject(attr) start with "if value:", so a false input is empty */
        if (!lg_jv_truthy(v) && !NAME_IS("unique") && !NAME_IS("items")) {
            struct jv r = lg_jlist_make(c, 0);
            r.tuple = JV_GEN;
            return r;
        }
        return lazy_error(c, NAME_IS("items") ? "Can only get item pairs from a mapping."
                                              : "object is not iterable");
    }
    if (NAME_IS("map") || NAME_IS("select") || NAME_IS("reject") || NAME_IS("selectattr") ||
        NAME_IS("rejectattr")) {
        struct jlist *l = lg_jv_iter(c, v);
        struct jv r = lg_jlist_make(c, 0);
        size_t i, cap = 0;
        int is_map = NAME_IS("map"), want = NAME_IS("select") || NAME_IS("selectattr");
        int by_attr = NAME_IS("selectattr") || NAME_IS("rejectattr");
        if (!is_map) {
            size_t k;
            for (k = 0; k < nargs; k++)
                if (args[k].name)
                    FAIL_UNSUP(c, "unsupported: keyword arguments of '%.*s'", (int)n, name);
        }
        if (is_map && !arg(args, nargs, 99, "attribute") && !a0)
            FAIL_TYPE(c, "map: needs a filter name or attribute=");
        for (i = 0; i < l->n; i++) {
            if (is_map)
                list_push(c, &r, &cap, do_map_item(c, &l->v[i], args, nargs));
            else if (select_item(c, &l->v[i], args, nargs, by_attr) == want)
                list_push(c, &r, &cap, l->v[i]);
        }
        r.tuple = JV_GEN;
        return r;
    }
    if (NAME_IS("replace")) {
        struct jv s = lg_jv_to_str(c, v);
        const struct jv *cnt = arg(args, nargs, 2, "count");
        static const char *const kw[] = {"count", NULL};
        check_args(c, "filter", name, n, args, nargs, 3, kw);
        return replace(c, s, lg_jv_to_str(c, a0 ? a0 : v), lg_jv_to_str(c, arg(args, nargs, 1, NULL) ? arg(args, nargs, 1, NULL) : v),
                       cnt && cnt->t != JT_NONE ? need_int(c, cnt, "replace") : -1);
    }
    if (NAME_IS("int")) {
        const struct jv *d = arg(args, nargs, 0, "default");
        int64_t i;
        double f;
        static const char *const kw[] = {"default", "base", NULL};
        check_args(c, "filter", name, n, args, nargs, 2, kw);
        if (v->t == JT_UNDEF)
            fail_undef(c, v); /* int(Undefined) raises */
        if (v->t == JT_INT || v->t == JT_BOOL)
            return lg_jv_int(v->u.i);
        if (v->t == JT_FLOAT && fabs(v->u.f) < 9.2e18)
            return lg_jv_int((int64_t)v->u.f);
        if (v->t == JT_STR && parse_int(v->u.s, v->n, &i))
            return lg_jv_int(i);
        if (v->t == JT_STR && parse_float(v->u.s, v->n, &f) && fabs(f) < 9.2e18)
            return lg_jv_int((int64_t)f);
        return d ? *d : lg_jv_int(0);
    }
    if (NAME_IS("float")) {
        const struct jv *d = arg(args, nargs, 0, "default");
        double f;
        static const char *const kw[] = {"default", NULL};
        check_args(c, "filter", name, n, args, nargs, 1, kw);
        if (v->t == JT_UNDEF)
            fail_undef(c, v);
        if (is_num(v))
            return jv_float(num_f(v));
        if (v->t == JT_STR && parse_float(v->u.s, v->n, &f))
            return jv_float(f);
        return d ? *d : jv_float(0.0);
    }
    if (NAME_IS("abs")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        if (v->t == JT_FLOAT)
            return jv_float(fabs(v->u.f));
        if ((v->t == JT_INT || v->t == JT_BOOL) && v->u.i != INT64_MIN)
            return lg_jv_int(v->u.i < 0 ? -v->u.i : v->u.i);
        FAIL_TYPE(c, "bad operand type for abs(): '%s'", lg_jv_typename(v));
    }
    if (NAME_IS("safe")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        return lg_jv_to_str(c, v); /* Markup(value) */
    }
    if (NAME_IS("escape") || NAME_IS("e") || NAME_IS("forceescape")) {
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        return html_escape(c, lg_jv_to_str(c, v));
    }
    if (NAME_IS("indent")) {
        static const char *const kw[] = {"width", "first", "blank", NULL};
        const struct jv *w = arg(args, nargs, 0, "width"), *first = arg(args, nargs, 1, "first");
        const struct jv *blank = arg(args, nargs, 2, "blank");
        struct jv s, pad;
        struct jbuf b = {0};
        size_t i = 0;
        int at_start = 1, line0 = 1;
        if (v->t != JT_STR) /* do_indent appends "\n" to its argument */
            FAIL_TYPE(c, "indent: unsupported operand type(s) for +=: '%s' and 'str'", lg_jv_typename(v));
        s = *v;
        check_args(c, "filter", name, n, args, nargs, 3, kw);
        if (w && w->t == JT_STR) {
            pad = *w;
        } else {
            int64_t k = w ? need_int(c, w, "indent") : 4;
            char *sp;
            if (k < 0 || k > 4096)
                FAIL_UNSUP(c, "indent: width out of range");
            sp = lg_jinja_alloc(c, (size_t)k + 1);
            memset(sp, ' ', (size_t)k);
            pad = lg_jv_str(sp, (size_t)k);
        }
        /* jinja2.filters.do_indent: every line after the first (and the first with
         * first=True) gets the pad; blank lines only with blank=True */
        while (i < s.n) {
            const char *nl = memchr(s.u.s + i, '\n', s.n - i);
            size_t end = nl ? (size_t)(nl - s.u.s) : s.n;
            int is_blank = end == i + lg_jinja_lspace(s.u.s + i, end - i);
            if (at_start && (!line0 || (first && lg_jv_truthy(first))) &&
                (!is_blank || (blank && lg_jv_truthy(blank))))
                lg_jbuf_put(c, &b, pad.u.s, pad.n);
            lg_jbuf_put(c, &b, s.u.s + i, end - i + (nl ? 1 : 0));
            i = end + (nl ? 1 : 0);
            line0 = 0;
            at_start = 1;
        }
        return buf_str(&b);
    }
    if (NAME_IS("unique")) {
        struct jlist *l = lg_jv_iter(c, v);
        struct jv r = lg_jlist_make(c, 0);
        size_t i, k, cap = 0;
        check_args(c, "filter", name, n, args, nargs, 0, NULL);
        for (i = 0; i < l->n; i++) {
            lg_jinja_work(c, 1 + (r.u.l->n >> 4));
            for (k = 0; k < r.u.l->n; k++)
                if (lg_jv_eq(&r.u.l->v[k], &l->v[i]))
                    break;
            if (k == r.u.l->n)
                list_push(c, &r, &cap, l->v[i]);
        }
        r.tuple = JV_GEN;
        return r;
    }
    if (NAME_IS("sort")) {
        static const char *const kw[] = {"reverse", "case_sensitive", "attribute", NULL};
        const struct jv *rev = arg(args, nargs, 0, "reverse"), *cs = arg(args, nargs, 1, "case_sensitive");
        const struct jv *at = arg(args, nargs, 2, "attribute");
        struct jlist *l = lg_jv_iter(c, v);
        struct jsort *tmp;
        struct jv r = lg_jlist_make(c, l->n);
        size_t i;
        check_args(c, "filter", name, n, args, nargs, 3, kw);
        tmp = lg_jinja_alloc(c, (l->n ? l->n : 1) * sizeof *tmp);
        for (i = 0; i < l->n; i++) {
            tmp[i].key = l->v[i];
            if (at)
                tmp[i].key = at->t == JT_STR ? lg_jv_getattr(c, &l->v[i], at->u.s, at->n)
                                             : lg_jv_getitem(c, &l->v[i], at);
            if (tmp[i].key.t == JT_STR && !(cs && lg_jv_truthy(cs)))
                tmp[i].key = casemap(c, tmp[i].key, 0);
            tmp[i].idx = i;
        }
        sort_items(c, tmp, lg_jinja_alloc(c, (l->n ? l->n : 1) * sizeof *tmp), l->n);
        for (i = 0; i < l->n; i++)
            r.u.l->v[rev && lg_jv_truthy(rev) ? l->n - 1 - i : i] = l->v[tmp[i].idx];
        return r;
    }
    if (NAME_IS("format")) {
        /* soft_str(value) % (kwargs or args) */
        struct jv s = lg_jv_to_str(c, v), t;
        size_t i, npos = 0, nkw = 0;
        for (i = 0; i < nargs; i++)
            args[i].name ? nkw++ : npos++;
        if (npos && nkw)
            FAIL_TYPE(c, "format: can't handle positional and keyword arguments at the same time");
        if (nkw) {
            t.t = JT_DICT;
            t.u.d = lg_jdict_new(c, nkw);
            for (i = 0; i < nargs; i++)
                lg_jdict_set(c, t.u.d, lg_jv_str(args[i].name, args[i].nlen), args[i].v);
        } else {
            t = lg_jlist_make(c, npos);
            t.tuple = 1;
            for (i = 0; i < nargs; i++)
                t.u.l->v[i] = args[i].v;
        }
        return lg_jv_percent(c, &s, &t);
    }
    if (NAME_IS("dictsort")) {
        static const char *const kw[] = {"case_sensitive", "by", "reverse", NULL};
        const struct jv *cs = arg(args, nargs, 0, "case_sensitive"), *by = arg(args, nargs, 1, "by");
        const struct jv *rev = arg(args, nargs, 2, "reverse");
        struct jv items, r;
        struct jsort *tmp;
        size_t i, k;
        int by_value;
        check_args(c, "filter", name, n, args, nargs, 3, kw);
        if (v->t != JT_DICT)
            FAIL_TYPE(c, "dictsort: expected a mapping, got %s", lg_jv_typename(v));
        by_value = by && by->t == JT_STR && by->n == 5 && !memcmp(by->u.s, "value", 5);
        if (by && !by_value && !(by->t == JT_STR && by->n == 3 && !memcmp(by->u.s, "key", 3)))
            FAIL_TYPE(c, "You can only sort by either \"key\" or \"value\"");
        items = lg_jlist_make(c, v->u.d->n);
        tmp = lg_jinja_alloc(c, (v->u.d->n ? v->u.d->n : 1) * sizeof *tmp);
        for (i = 0; i < v->u.d->n; i++) {
            tmp[i].key = by_value ? v->u.d->v[i] : v->u.d->k[i];
            if (tmp[i].key.t == JT_STR && !(cs && lg_jv_truthy(cs)))
                tmp[i].key = casemap(c, tmp[i].key, 0);
            tmp[i].idx = i;
        }
        sort_items(c, tmp, lg_jinja_alloc(c, (v->u.d->n ? v->u.d->n : 1) * sizeof *tmp), v->u.d->n);
        r = items;
        for (i = 0; i < v->u.d->n; i++) {
            struct jv pair = lg_jlist_make(c, 2);
            k = tmp[rev && lg_jv_truthy(rev) ? v->u.d->n - 1 - i : i].idx;
            pair.tuple = 1;
            pair.u.l->v[0] = v->u.d->k[k];
            pair.u.l->v[1] = v->u.d->v[k];
            r.u.l->v[i] = pair;
        }
        return r;
    }
    if (NAME_IS("sum")) {
        static const char *const kw[] = {"attribute", "start", NULL};
        const struct jv *at = arg(args, nargs, 0, "attribute"), *st = arg(args, nargs, 1, "start");
        struct jlist *l;
        struct jv acc = st ? *st : lg_jv_int(0);
        size_t i;
        check_args(c, "filter", name, n, args, nargs, 2, kw);
        l = lg_jv_iter(c, v);
        for (i = 0; i < l->n; i++) {
            struct jv item = l->v[i];
            if (at)
                item = at->t == JT_STR ? lg_jv_getattr(c, &item, at->u.s, at->n) : lg_jv_getitem(c, &item, at);
            acc = lg_jv_binop(c, JO_ADD, &acc, &item);
        }
        return acc;
    }
    if (NAME_IS("min") || NAME_IS("max")) {
        static const char *const kw[] = {"case_sensitive", "attribute", NULL};
        const struct jv *cs = arg(args, nargs, 0, "case_sensitive"), *at = arg(args, nargs, 1, "attribute");
        struct jlist *l;
        size_t i, best = 0;
        struct jv bkey = {0};
        check_args(c, "filter", name, n, args, nargs, 2, kw);
        l = lg_jv_iter(c, v);
        if (!l->n)
            return lg_jv_undef(NAME_IS("min") ? "min of an empty sequence" : "max of an empty sequence", 24);
        for (i = 0; i < l->n; i++) {
            struct jv key = l->v[i];
            if (at)
                key = at->t == JT_STR ? lg_jv_getattr(c, &key, at->u.s, at->n) : lg_jv_getitem(c, &key, at);
            if (key.t == JT_STR && !(cs && lg_jv_truthy(cs)))
                key = casemap(c, key, 0);
            if (i == 0 || (NAME_IS("min") ? cmp_values(c, &key, &bkey, "<") < 0
                                          : cmp_values(c, &key, &bkey, ">") > 0)) {
                best = i;
                bkey = key;
            }
        }
        return l->v[best];
    }
    FAIL_UNSUP(c, "unsupported filter '%.*s'", (int)LG_MIN(n, 64), name);
}

/* ---- methods of str, dict and loop ---- */
struct jv lg_jinja_method(struct jctx *c, const struct jv *obj, const char *name, size_t n,
                          const struct jarg *args, size_t nargs) {
    const struct jv *a0 = arg(args, nargs, 0, NULL), *a1 = arg(args, nargs, 1, NULL);
    size_t k;
    for (k = 0; k < nargs; k++)
        if (args[k].name && !(obj->t == JT_STR && (NAME_IS("split") || NAME_IS("rsplit"))))
            FAIL_UNSUP(c, "unsupported: keyword arguments of method '%.*s'", (int)n, name);
    if (obj->t == JT_UNDEF)
        fail_undef(c, obj);
    if (obj->t == JT_STR) {
        struct jv s = *obj;
        if (NAME_IS("startswith") || NAME_IS("endswith"))
            return lg_jv_bool(starts_or_ends(c, s, a0, NAME_IS("endswith")));
        if (NAME_IS("strip"))
            return strip(c, s, a0, 3);
        if (NAME_IS("lstrip"))
            return strip(c, s, a0, 1);
        if (NAME_IS("rstrip"))
            return strip(c, s, a0, 2);
        if (NAME_IS("split") || NAME_IS("rsplit")) {
            const struct jv *sep = arg(args, nargs, 0, "sep"), *mx = arg(args, nargs, 1, "maxsplit");
            return split(c, s, sep, mx ? need_int(c, mx, "split") : -1, NAME_IS("rsplit"));
        }
        if (NAME_IS("lower") || NAME_IS("upper") || NAME_IS("capitalize"))
            return casemap(c, s, NAME_IS("lower") ? 0 : NAME_IS("upper") ? 1 : 2);
        if (NAME_IS("title"))
            return casemap(c, s, 4);
        if (NAME_IS("replace"))
            return replace(c, s, need_str(c, a0, "replace"), need_str(c, a1, "replace"),
                           arg(args, nargs, 2, NULL) ? need_int(c, arg(args, nargs, 2, NULL), "replace") : -1);
        if (NAME_IS("find") || NAME_IS("rfind") || NAME_IS("count") || NAME_IS("index")) {
            struct jv sub = need_str(c, a0, "find");
            size_t offs_n, *offs, pos;
            int64_t found = -1, cnt = 0;
            if (NAME_IS("count")) {
                if (!sub.n)
                    return lg_jv_int((int64_t)cp_count(s.u.s, s.n) + 1);
                for (pos = 0; (pos = find_at(c, s.u.s, s.n, pos, sub.u.s, sub.n)) != SIZE_MAX; pos += sub.n)
                    cnt++;
                return lg_jv_int(cnt);
            }
            if (NAME_IS("rfind")) {
                pos = rfind_before(c, reversed(c, s.u.s, s.n), s.n, s.n, reversed(c, sub.u.s, sub.n), sub.n);
            } else {
                pos = find_at(c, s.u.s, s.n, 0, sub.u.s, sub.n);
            }
            if (pos != SIZE_MAX)
                found = (int64_t)pos;
            if (found < 0) {
                if (NAME_IS("index"))
                    FAIL_TYPE(c, "substring not found");
                return lg_jv_int(-1);
            }
            offs = cp_offsets(c, s.u.s, (size_t)found, &offs_n);
            (void)offs;
            return lg_jv_int((int64_t)offs_n);
        }
        if (NAME_IS("join"))
            return join(c, a0 ? a0 : obj, s, NULL);
        if (NAME_IS("splitlines")) {
            struct jv out = lg_jlist_make(c, 0);
            size_t cap = 0, i = 0;
            while (i < s.n) {
                size_t e = i;
                while (e < s.n && s.u.s[e] != '\n' && s.u.s[e] != '\r')
                    e++;
                list_push(c, &out, &cap, lg_jv_str(s.u.s + i, e - i));
                if (e < s.n && s.u.s[e] == '\r' && e + 1 < s.n && s.u.s[e + 1] == '\n')
                    e++;
                i = e + 1;
            }
            return out;
        }
        if (NAME_IS("isdigit") || NAME_IS("isalpha") || NAME_IS("isalnum") || NAME_IS("isspace")) {
            size_t i = 0;
            if (!s.n)
                return lg_jv_bool(0);
            while (i < s.n) {
                size_t len;
                int32_t cp = cp_decode(s.u.s + i, s.n - i, &len);
                utf8proc_category_t cat = cp < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(cp);
                int dig = cat == UTF8PROC_CATEGORY_ND;
                int alp = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
                          cat == UTF8PROC_CATEGORY_LT || cat == UTF8PROC_CATEGORY_LM ||
                          cat == UTF8PROC_CATEGORY_LO;
                if (NAME_IS("isdigit") ? !dig : NAME_IS("isalpha") ? !alp
                    : NAME_IS("isalnum") ? !(dig || alp) : lg_jinja_lspace(s.u.s + i, len) != len)
                    return lg_jv_bool(0);
                i += len;
            }
            return lg_jv_bool(1);
        }
    } else if (obj->t == JT_DICT || obj->t == JT_NS) {
        const struct jdict *d = obj->u.d;
        if (NAME_IS("items") || NAME_IS("keys") || NAME_IS("values")) {
            struct jv r = lg_jlist_make(c, d->n);
            size_t i;
            for (i = 0; i < d->n; i++) {
                if (NAME_IS("items")) {
                    struct jv pair = lg_jlist_make(c, 2);
                    pair.tuple = 1;
                    pair.u.l->v[0] = d->k[i];
                    pair.u.l->v[1] = d->v[i];
                    r.u.l->v[i] = pair;
                } else {
                    r.u.l->v[i] = NAME_IS("keys") ? d->k[i] : d->v[i];
                }
            }
            return r;
        }
        if (NAME_IS("get")) {
            const struct jv *r;
            if (!a0)
                FAIL_TYPE(c, "get expected at least 1 argument");
            r = dict_find(d, a0);
            return r ? *r : a1 ? *a1 : lg_jv_none();
        }
    } else if (obj->t == JT_LOOP && NAME_IS("cycle")) {
        if (!nargs)
            FAIL_TYPE(c, "no items for cycling given");
        return args[obj->u.lp->i % nargs].v;
    }
    FAIL_UNSUP(c, "unsupported method '%.*s' of a %s", (int)LG_MIN(n, 64), name, lg_jv_typename(obj));
}

/* ---- global functions ---- */
struct jv lg_jinja_call_func(struct jctx *c, int fn, const struct jarg *args, size_t nargs) {
    const struct jv *a0 = arg(args, nargs, 0, NULL);
    size_t i;
    switch (fn) {
    case JF_RAISE: {
        struct jv m = a0 ? lg_jv_to_str(c, a0) : lg_jv_str("", 0);
        FAIL_TYPE(c, "raise_exception: %.*s", (int)LG_MIN(m.n, 400), m.u.s);
    }
    case JF_STRFTIME: {
        struct jv f = need_str(c, a0, "strftime_now");
        char fmt[256], out[512];
        struct tm tm;
        time_t t = c->now >= 0 ? (time_t)c->now : time(NULL);
        size_t len;
        if (f.n >= sizeof fmt)
            FAIL_UNSUP(c, "strftime_now: format too long");
        memcpy(fmt, f.u.s, f.n);
        fmt[f.n] = 0;
        if (c->now >= 0 ? !gmtime_r(&t, &tm) : !localtime_r(&t, &tm))
            FAIL_UNSUP(c, "strftime_now: no time");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        len = strftime(out, sizeof out, fmt, &tm); /* the template's format, as Python's */
#pragma GCC diagnostic pop
        if (!len && f.n)
            FAIL_UNSUP(c, "strftime_now: format gives an empty or too long result");
        return lg_jv_str(lg_jinja_strdup(c, out, len), len);
    }
    case JF_RANGE: {
        int64_t a = 0, z, st = 1, cnt = 0, x;
        struct jv r;
        for (i = 0; i < nargs; i++)
            if (args[i].name)
                FAIL_TYPE(c, "range() takes no keyword arguments");
        if (nargs == 0 || nargs > 3)
            FAIL_TYPE(c, "range expected 1 to 3 arguments, got %zu", nargs);
        if (nargs == 1) {
            z = need_int(c, &args[0].v, "range");
        } else {
            a = need_int(c, &args[0].v, "range");
            z = need_int(c, &args[1].v, "range");
            if (nargs == 3)
                st = need_int(c, &args[2].v, "range");
        }
        if (!st)
            FAIL_TYPE(c, "range() arg 3 must not be zero");
        if (st > 0 && z > a)
            cnt = (int64_t)(((uint64_t)z - (uint64_t)a - 1) / (uint64_t)st + 1);
        else if (st < 0 && z < a)
            cnt = (int64_t)(((uint64_t)a - (uint64_t)z - 1) / (uint64_t)(-(st + 1) + 1) + 1);
        /* the sandbox's MAX_RANGE */
        if (cnt > 100000)
            FAIL_TYPE(c, "range too big (the sandbox allows 100000 items)");
        r = lg_jlist_make(c, (size_t)cnt);
        for (x = 0; x < cnt; x++)
            r.u.l->v[x] = lg_jv_int(a + x * st);
        return r;
    }
    case JF_NAMESPACE:
    case JF_DICT: {
        struct jv r = {0};
        r.t = fn == JF_NAMESPACE ? JT_NS : JT_DICT;
        r.u.d = lg_jdict_new(c, nargs);
        for (i = 0; i < nargs; i++) {
            if (!args[i].name) {
                const struct jv *src = &args[i].v;
                size_t k;
                if (src->t != JT_DICT || i > 0)
                    FAIL_UNSUP(c, "unsupported: positional arguments of %s() other than one mapping",
                               fn == JF_NAMESPACE ? "namespace" : "dict");
                for (k = 0; k < src->u.d->n; k++)
                    lg_jdict_set(c, r.u.d, src->u.d->k[k], src->u.d->v[k]);
                continue;
            }
            lg_jdict_set(c, r.u.d, lg_jv_str(args[i].name, args[i].nlen), args[i].v);
        }
        return r;
    }
    default: FAIL_UNSUP(c, "unknown function");
    }
}
