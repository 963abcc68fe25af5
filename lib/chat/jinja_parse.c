/*
 * jinja_parse.c - the Jinja lexer and parser: template text -> AST (jinja.h).
 *
 * The lexer follows jinja2/lexer.py (3.1) with transformers' settings: newlines are
 * normalised to \n and one trailing newline is dropped (keep_trailing_newline=False);
 * {%- / {{- / {#- strip all whitespace before the tag and -%} / -}} / -#} all after it;
 * trim_blocks drops the one newline after %} and #}; lstrip_blocks drops the spaces
 * and tabs between a line start and {% or {# ({%+ keeps them, +%} keeps the newline).
 * The parser follows jinja2/parser.py's precedence: or, and, not, comparisons, + -, ~,
 * * / // %, **, unary - +, then primaries with . [] () and the filters (|) and tests
 * (is) that bind tightest. Anything else is LLMGPU_ERR_UNSUPPORTED naming the construct
 * and its template line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"

enum { T_EOF, T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP };

struct jtok {
    uint8_t t;
    int line;
    const char *s;
    size_t n;
    int64_t i;
    double f;
};

struct jparser {
    struct jctx *c;
    struct jtok *tk;
    size_t n, cap, pos;
    uint32_t depth;
    int loops; /* for-loops enclosing the current statement (break/continue) */
};

static void push_tok(struct jparser *p, struct jtok t) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct jtok *nt = lg_jinja_alloc(p->c, cap * sizeof *nt);
        if (p->n)
            memcpy(nt, p->tk, p->n * sizeof *nt);
        p->tk = nt;
        p->cap = cap;
    }
    p->tk[p->n++] = t;
}

/* Python's str.isspace() for the UTF-8 character at s (length in *len), 0 if not. */
static int uspace_at(const unsigned char *s, size_t avail, size_t *len) {
    unsigned cp;
    if (!avail)
        return 0;
    if (s[0] < 0x80) {
        *len = 1;
        return s[0] == ' ' || (s[0] >= 9 && s[0] <= 13) || (s[0] >= 0x1c && s[0] <= 0x1f);
    }
    if ((s[0] & 0xE0) == 0xC0 && avail >= 2) {
        *len = 2;
        cp = ((unsigned)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return cp == 0x85 || cp == 0xA0;
    }
    if ((s[0] & 0xF0) == 0xE0 && avail >= 3) {
        *len = 3;
        cp = ((unsigned)(s[0] & 0x0F) << 12) | ((unsigned)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
               cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }
    return 0;
}

/* Bytes of Python-whitespace at the end of s[0..n). */
size_t lg_jinja_rspace(const char *s, size_t n);
size_t lg_jinja_rspace(const char *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1, len;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80 && end - st < 4)
            st--;
        if (!uspace_at((const unsigned char *)s + st, end - st, &len) || st + len != end)
            break;
        end = st;
    }
    return n - end;
}
/* Bytes of Python-whitespace at the start of s[0..n). */
size_t lg_jinja_lspace(const char *s, size_t n);
size_t lg_jinja_lspace(const char *s, size_t n) {
    size_t i = 0, len;
    while (i < n && uspace_at((const unsigned char *)s + i, n - i, &len))
        i += len;
    return i;
}

static int count_nl(const char *s, size_t n) {
    int k = 0;
    size_t i;
    for (i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}

static _Noreturn void lex_fail(struct jparser *p, int line, const char *what) {
    p->c->line = line;
    lg_jinja_fail(p->c, LLMGPU_ERR_UNSUPPORTED, "template syntax error: %s", what);
}

static void append_utf8(char *o, size_t *k, uint32_t cp) {
    if (cp < 0x80) {
        o[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*k)++] = (char)(0xC0 | (cp >> 6));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (cp >> 12));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (cp >> 18));
        o[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A string literal body s[0..n) decoded as Python's "unicode-escape" codec does
 * (jinja2 lexer: value.encode("ascii", "backslashreplace").decode("unicode-escape")). */
static void decode_string(struct jparser *p, int line, const char *s, size_t n, struct jtok *t) {
    char *o = lg_jinja_alloc(p->c, n + 1);
    size_t i = 0, k = 0;
    while (i < n) {
        char ch = s[i];
        if (ch != '\\' || i + 1 >= n) {
            o[k++] = ch;
            i++;
            continue;
        }
        ch = s[i + 1];
        i += 2;
        switch (ch) {
        case '\n': break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'v': o[k++] = '\v'; break;
        case 'x': case 'u': case 'U': {
            int digits = ch == 'x' ? 2 : ch == 'u' ? 4 : 8, d;
            uint32_t cp = 0;
            for (d = 0; d < digits; d++) {
                int h = i + (size_t)d < n ? hexval(s[i + (size_t)d]) : -1;
                if (h < 0)
                    lex_fail(p, line, "truncated \\x, \\u or \\U escape in a string");
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)digits;
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                lex_fail(p, line, "escape outside the Unicode range (or a surrogate) in a string");
            append_utf8(o, &k, cp); /* at most 4 bytes for at least 4 source bytes */
            break;
        }
        default:
            if (ch >= '0' && ch <= '7') {
                uint32_t cp = (uint32_t)(ch - '0');
                int d;
                for (d = 0; d < 2 && i < n && s[i] >= '0' && s[i] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                append_utf8(o, &k, cp); /* <= 0777: 2 bytes for >= 2 source bytes */
            } else if (ch == 'N') {
                lex_fail(p, line, "\\N{...} escapes are not supported");
            } else {
                o[k++] = '\\';
                o[k++] = ch;
            }
        }
    }
    t->s = o;
    t->n = k;
}

static int is_name_start(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static int is_digit(char ch) {
    return ch >= '0' && ch <= '9';
}

/* Digits with single underscores between them, from s[i]; returns the end. */
static size_t scan_digits(const char *s, size_t n, size_t i) {
    while (i < n && (is_digit(s[i]) || (s[i] == '_' && i + 1 < n && is_digit(s[i + 1]) &&
                                        i > 0 && is_digit(s[i - 1]))))
        i++;
    return i;
}

static void push_text(struct jparser *p, const char *s, size_t n, int line) {
    struct jtok t = {0};
    if (!n)
        return;
    t.t = T_TEXT;
    t.s = s;
    t.n = n;
    t.line = line;
    push_tok(p, t);
}

/* Lex the inside of a {{ }} or {% %} tag from *pos; kind '{' or '%'. Returns with *pos after
 * the closing delimiter (and what trim_blocks / '-' removed after it); *nl_end tells whether
 * that consumed text ends with a newline (jinja's line_starting). */
static void lex_tag(struct jparser *p, const char *src, size_t n, size_t *pos, int *line,
                    char kind, int *nl_end) {
    size_t i = *pos;
    int depth = 0;
    char close = kind == '{' ? '}' : '%';
    for (;;) {
        struct jtok t = {0};
        while (i < n && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r' ||
                         src[i] == '\f' || src[i] == '\v')) {
            *line += src[i] == '\n';
            i++;
        }
        if (i >= n)
            lex_fail(p, *line, kind == '{' ? "unterminated '{{' (missing '}}')"
                                           : "unterminated '{%' (missing '%}')");
        t.line = *line;
        if (depth == 0) {
            int minus = src[i] == '-', plus = src[i] == '+' && kind == '%';
            size_t j = i + (size_t)(minus || plus);
            if (j + 1 < n && src[j] == close && src[j + 1] == '}') {
                j += 2;
                *nl_end = 0;
                if (minus) {
                    size_t k = lg_jinja_lspace(src + j, n - j);
                    *line += count_nl(src + j, k);
                    *nl_end = k > 0 && src[j + k - 1] == '\n';
                    j += k;
                } else if (!plus && kind == '%' && j < n && src[j] == '\n') {
                    j++;
                    (*line)++;
                    *nl_end = 1;
                }
                t.t = kind == '{' ? T_VEND : T_BEND;
                push_tok(p, t);
                *pos = j;
                return;
            }
        }
        if (is_name_start(src[i])) {
            size_t j = i;
            while (j < n && (is_name_start(src[j]) || is_digit(src[j])))
                j++;
            t.t = T_NAME;
            t.s = src + i;
            t.n = j - i;
            i = j;
        } else if (is_digit(src[i])) {
            size_t j = scan_digits(src, n, i), k;
            int is_float = 0;
            char buf[128];
            size_t bl = 0;
            if (j + 1 < n && src[j] == '.' && is_digit(src[j + 1])) {
                j = scan_digits(src, n, j + 1);
                is_float = 1;
            }
            if (j < n && (src[j] == 'e' || src[j] == 'E')) {
                size_t e = j + 1;
                if (e < n && (src[e] == '+' || src[e] == '-'))
                    e++;
                if (e < n && is_digit(src[e])) {
                    j = scan_digits(src, n, e);
                    is_float = 1;
                }
            }
            for (k = i; k < j && bl + 1 < sizeof buf; k++)
                if (src[k] != '_')
                    buf[bl++] = src[k];
            if (bl + 1 >= sizeof buf)
                lex_fail(p, *line, "number literal too long");
            buf[bl] = 0;
            if (is_float) {
                t.t = T_FLOAT;
                t.f = strtod(buf, NULL);
            } else {
                char *end;
                unsigned long long v = strtoull(buf, &end, 10);
                if (v > INT64_MAX || bl > 19)
                    lex_fail(p, *line, "integer literal out of range");
                t.t = T_INT;
                t.i = (int64_t)v;
            }
            i = j;
        } else if (src[i] == '\'' || src[i] == '"') {
            char q = src[i];
            size_t j = i + 1;
            while (j < n && src[j] != q) {
                if (src[j] == '\\' && j + 1 < n)
                    j++;
                j++;
            }
            if (j >= n)
                lex_fail(p, *line, "unterminated string literal");
            t.t = T_STR;
            decode_string(p, *line, src + i + 1, j - i - 1, &t);
            *line += count_nl(src + i, j - i);
            i = j + 1;
        } else {
            static const char *const two[] = {"//", "**", "==", "!=", ">=", "<="};
            size_t k, len = 0;
            for (k = 0; k < LG_ARRAY_LEN(two); k++)
                if (i + 1 < n && src[i] == two[k][0] && src[i + 1] == two[k][1])
                    len = 2;
            if (!len && strchr("+-/*%~[](){}=.:|,;<>", src[i]) && src[i])
                len = 1;
            if (!len) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected character '%c' in a tag",
                         src[i] >= 32 && src[i] < 127 ? src[i] : '?');
                lex_fail(p, *line, msg);
            }
            if (len == 1 && (src[i] == '(' || src[i] == '[' || src[i] == '{'))
                depth++;
            if (len == 1 && (src[i] == ')' || src[i] == ']' || src[i] == '}') && depth > 0)
                depth--;
            t.t = T_OP;
            t.s = src + i;
            t.n = len;
            i += len;
        }
        push_tok(p, t);
    }
}

/* Find the next "{{", "{%" or "{#" at or after i. */
static size_t find_tag(const char *s, size_t n, size_t i) {
    for (; i + 1 < n; i++) {
        const char *q = memchr(s + i, '{', n - 1 - i);
        if (!q)
            return n;
        i = (size_t)(q - s);
        if (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')
            return i;
    }
    return n;
}

/* {% raw %} at tag position i (after "{%" and the sign at j)? Returns the end of the
 * opening tag or 0. */
static size_t raw_open(const char *s, size_t n, size_t j) {
    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
        j++;
    if (j + 3 > n || memcmp(s + j, "raw", 3) != 0)
        return 0;
    j += 3;
    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
        j++;
    if (j + 2 <= n && s[j] == '%' && s[j + 1] == '}')
        return j + 2;
    if (j + 3 <= n && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}')
        return j + 3 + lg_jinja_lspace(s + j + 3, n - j - 3);
    return 0;
}

static void lex(struct jparser *p, const char *src, size_t n) {
    size_t pos = 0;
    int line = 1, line_starting = 1;
    for (;;) {
        size_t tag = find_tag(src, n, pos), tl, after, raw_end;
        char kind, sign;
        int text_line = line;
        if (tag >= n) {
            push_text(p, src + pos, n - pos, line);
            break;
        }
        kind = src[tag + 1];
        sign = tag + 2 < n && (src[tag + 2] == '-' || src[tag + 2] == '+') ? src[tag + 2] : 0;
        tl = tag - pos;
        line += count_nl(src + pos, tl);
        if (sign == '-') {
            tl -= lg_jinja_rspace(src + pos, tl);
        } else if (sign != '+' && kind != '{') {
            size_t lp = tl;
            while (lp > 0 && src[pos + lp - 1] != '\n')
                lp--;
            if ((lp > 0 || line_starting) && lp < tl &&
                lg_jinja_lspace(src + pos + lp, tl - lp) == tl - lp)
                tl = lp;
        }
        push_text(p, src + pos, tl, text_line);
        after = tag + 2 + (sign ? 1 : 0);
        if (kind == '%' && (raw_end = raw_open(src, n, after)) != 0) {
            /* {% raw %}...{% endraw %}: text up to the first endraw tag */
            size_t k = raw_end;
            line += count_nl(src + tag, raw_end - tag);
            for (;;) {
                size_t t2 = find_tag(src, n, k), j, body;
                char s2;
                if (t2 >= n)
                    lex_fail(p, line, "missing {% endraw %}");
                k = t2 + 2;
                if (src[t2 + 1] != '%')
                    continue;
                s2 = t2 + 2 < n && (src[t2 + 2] == '-' || src[t2 + 2] == '+') ? src[t2 + 2] : 0;
                j = t2 + 2 + (s2 ? 1 : 0);
                while (j < n && (src[j] == ' ' || src[j] == '\t' || src[j] == '\n' || src[j] == '\r'))
                    j++;
                if (j + 6 > n || memcmp(src + j, "endraw", 6) != 0)
                    continue;
                j += 6;
                while (j < n && (src[j] == ' ' || src[j] == '\t' || src[j] == '\n' || src[j] == '\r'))
                    j++;
                body = t2 - raw_end;
                if (s2 == '-')
                    body -= lg_jinja_rspace(src + raw_end, body);
                push_text(p, src + raw_end, body, line);
                line += count_nl(src + raw_end, j - raw_end);
                line_starting = 0;
                if (j + 3 <= n && src[j] == '-' && src[j + 1] == '%' && src[j + 2] == '}') {
                    size_t w = lg_jinja_lspace(src + j + 3, n - j - 3);
                    line += count_nl(src + j + 3, w);
                    line_starting = w > 0 && src[j + 3 + w - 1] == '\n';
                    pos = j + 3 + w;
                } else if (j + 3 <= n && src[j] == '+' && src[j + 1] == '%' && src[j + 2] == '}') {
                    pos = j + 3;
                } else if (j + 2 <= n && src[j] == '%' && src[j + 1] == '}') {
                    pos = j + 2;
                    if (pos < n && src[pos] == '\n') {
                        pos++;
                        line++;
                        line_starting = 1;
                    }
                } else {
                    lex_fail(p, line, "malformed {% endraw %}");
                }
                break;
            }
            continue;
        }
        if (kind == '#') {
            /* comment: up to the first "#}" (with "-#}" stripping after, "+#}" keeping) */
            size_t k = after;
            for (;;) {
                const char *q = k + 1 < n ? memchr(src + k, '#', n - 1 - k) : NULL;
                if (!q)
                    lex_fail(p, line, "unterminated comment (missing '#}')");
                k = (size_t)(q - src);
                if (src[k + 1] == '}')
                    break;
                k++;
            }
            line += count_nl(src + tag, k - tag);
            pos = k + 2;
            line_starting = 0;
            if (k > after && src[k - 1] == '-') {
                size_t w = lg_jinja_lspace(src + pos, n - pos);
                line += count_nl(src + pos, w);
                line_starting = w > 0 && src[pos + w - 1] == '\n';
                pos += w;
            } else if (!(k > after && src[k - 1] == '+') && pos < n && src[pos] == '\n') {
                pos++;
                line++;
                line_starting = 1;
            }
            continue;
        }
        {
            struct jtok t = {0};
            t.t = kind == '{' ? T_VBEGIN : T_BBEGIN;
            t.line = line;
            push_tok(p, t);
        }
        pos = after;
        lex_tag(p, src, n, &pos, &line, kind, &line_starting);
    }
    {
        struct jtok t = {0};
        t.t = T_EOF;
        t.line = line;
        push_tok(p, t);
    }
}

/* ---- parser ---- */

static struct jtok *cur(struct jparser *p) {
    return &p->tk[p->pos];
}
static struct jtok *peek(struct jparser *p, size_t k) {
    return p->pos + k < p->n ? &p->tk[p->pos + k] : &p->tk[p->n - 1];
}

static _Noreturn void perr(struct jparser *p, const char *fmt, ...) LG_PRINTF(2, 3);
static _Noreturn void perr(struct jparser *p, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    p->c->line = cur(p)->line;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg_jinja_fail(p->c, LLMGPU_ERR_UNSUPPORTED, "%s", msg);
}

static const char *tok_desc(const struct jtok *t) {
    switch (t->t) {
    case T_EOF: return "end of template";
    case T_TEXT: return "template text";
    case T_VBEGIN: return "'{{'";
    case T_VEND: return "'}}'";
    case T_BBEGIN: return "'{%'";
    case T_BEND: return "'%}'";
    case T_STR: return "a string";
    case T_INT: case T_FLOAT: return "a number";
    default: return "a token";
    }
}

static int is_op(const struct jtok *t, const char *op) {
    size_t l = strlen(op);
    return t->t == T_OP && t->n == l && memcmp(t->s, op, l) == 0;
}
static int is_name(const struct jtok *t, const char *name) {
    size_t l = strlen(name);
    return t->t == T_NAME && t->n == l && memcmp(t->s, name, l) == 0;
}

static _Noreturn void unexpected(struct jparser *p, const char *want) {
    struct jtok *t = cur(p);
    if (t->t == T_NAME || t->t == T_OP)
        perr(p, "template syntax error: expected %s, got '%.*s'", want, (int)t->n, t->s);
    perr(p, "template syntax error: expected %s, got %s", want, tok_desc(t));
}

static void expect_op(struct jparser *p, const char *op) {
    char want[16];
    if (!is_op(cur(p), op)) {
        snprintf(want, sizeof want, "'%s'", op);
        unexpected(p, want);
    }
    p->pos++;
}
static void expect_name(struct jparser *p, const char *name) {
    char want[32];
    if (!is_name(cur(p), name)) {
        snprintf(want, sizeof want, "'%s'", name);
        unexpected(p, want);
    }
    p->pos++;
}
static void expect_bend(struct jparser *p) {
    if (cur(p)->t != T_BEND)
        unexpected(p, "'%}'");
    p->pos++;
}

static struct jnode *node(struct jparser *p, int kind) {
    struct jnode *nd = lg_jinja_alloc(p->c, sizeof *nd);
    nd->k = (uint8_t)kind;
    nd->line = cur(p)->line;
    return nd;
}

/* Growable node-pointer arrays. */
struct nvec {
    struct jnode **v;
    size_t n, cap;
};
static void nvec_push(struct jparser *p, struct nvec *v, struct jnode *nd) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        struct jnode **nv = lg_jinja_alloc(p->c, cap * sizeof *nv);
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = nd;
}

static void enter(struct jparser *p) {
    if (++p->depth > p->c->lim.max_depth)
        perr(p, "template nested too deeply (limit reached)");
}

static struct jnode *parse_expr(struct jparser *p);
static struct jnode *parse_or(struct jparser *p);
static struct jnode *parse_unary(struct jparser *p, int with_filter);
static struct jnode *parse_primary(struct jparser *p);

static struct jnode *bin(struct jparser *p, int kind, int op, struct jnode *a, struct jnode *b) {
    struct jnode *nd = node(p, kind);
    nd->op = (uint8_t)op;
    nd->a = a;
    nd->b = b;
    nd->line = a->line;
    return nd;
}

/* Call arguments after '(' up to ')': positional, then name=value. */
static void parse_args(struct jparser *p, struct jnode *nd) {
    struct nvec args = {0};
    struct jkw *kw = NULL;
    size_t nkw = 0, kcap = 0;
    expect_op(p, "(");
    while (!is_op(cur(p), ")")) {
        if (args.n || nkw)
            expect_op(p, ",");
        if (is_op(cur(p), ")"))
            break;
        if (is_op(cur(p), "*") || is_op(cur(p), "**"))
            perr(p, "unsupported: *args / **kwargs in a call");
        if (cur(p)->t == T_NAME && is_op(peek(p, 1), "=")) {
            if (nkw == kcap) {
                struct jkw *nk = lg_jinja_alloc(p->c, (kcap ? kcap * 2 : 4) * sizeof *nk);
                if (nkw)
                    memcpy(nk, kw, nkw * sizeof *nk);
                kw = nk;
                kcap = kcap ? kcap * 2 : 4;
            }
            kw[nkw].name = cur(p)->s;
            kw[nkw].nlen = cur(p)->n;
            p->pos += 2;
            kw[nkw++].val = parse_expr(p);
        } else {
            if (nkw)
                perr(p, "template syntax error: positional argument after a keyword argument");
            nvec_push(p, &args, parse_expr(p));
        }
    }
    p->pos++;
    nd->args = args.v;
    nd->nargs = args.n;
    nd->kw = kw;
    nd->nkw = nkw;
}

static struct jnode *parse_subscript(struct jparser *p, struct jnode *obj) {
    struct jnode *parts[3] = {NULL, NULL, NULL};
    int k = 0, is_slice = 0;
    struct jnode *nd;
    expect_op(p, "[");
    for (;;) {
        if (is_op(cur(p), ":")) {
            is_slice = 1;
            if (++k > 2)
                unexpected(p, "']'");
            p->pos++;
            continue;
        }
        if (is_op(cur(p), "]"))
            break;
        if (parts[k])
            unexpected(p, "']'");
        parts[k] = parse_expr(p);
    }
    p->pos++;
    if (!is_slice) {
        if (!parts[0])
            unexpected(p, "an index");
        return bin(p, JN_GETITEM, 0, obj, parts[0]);
    }
    nd = node(p, JN_SLICE);
    nd->a = obj;
    nd->args = lg_jinja_alloc(p->c, 3 * sizeof *nd->args);
    memcpy(nd->args, parts, sizeof parts);
    nd->nargs = 3;
    return nd;
}

static struct jnode *parse_postfix(struct jparser *p, struct jnode *nd) {
    for (;;) {
        struct jtok *t = cur(p);
        if (is_op(t, ".")) {
            struct jtok *nt = peek(p, 1);
            p->pos++;
            if (nt->t == T_NAME) {
                struct jnode *g = node(p, JN_GETATTR);
                g->a = nd;
                g->s = nt->s;
                g->n = nt->n;
                p->pos++;
                nd = g;
            } else if (nt->t == T_INT) {
                struct jnode *lit = node(p, JN_LIT);
                lit->v = lg_jv_int(nt->i);
                p->pos++;
                nd = bin(p, JN_GETITEM, 0, nd, lit);
            } else {
                unexpected(p, "an attribute name");
            }
        } else if (is_op(t, "[")) {
            nd = parse_subscript(p, nd);
        } else if (is_op(t, "(")) {
            struct jnode *call = node(p, JN_CALL);
            call->a = nd;
            parse_args(p, call);
            nd = call;
        } else {
            return nd;
        }
    }
}

static struct jnode *parse_filter(struct jparser *p, struct jnode *operand) {
    struct jnode *f = node(p, JN_FILTER);
    if (cur(p)->t != T_NAME)
        unexpected(p, "a filter name");
    f->a = operand;
    f->s = cur(p)->s;
    f->n = cur(p)->n;
    p->pos++;
    if (is_op(cur(p), "."))
        perr(p, "unsupported: dotted filter name '%.*s'", (int)f->n, f->s);
    if (is_op(cur(p), "("))
        parse_args(p, f);
    return f;
}

static struct jnode *parse_filter_expr(struct jparser *p, struct jnode *nd) {
    for (;;) {
        struct jtok *t = cur(p);
        if (is_op(t, "|")) {
            p->pos++;
            nd = parse_filter(p, nd);
        } else if (is_name(t, "is")) {
            struct jnode *te = node(p, JN_TEST);
            struct jtok *a;
            p->pos++;
            te->a = nd;
            if (is_name(cur(p), "not")) {
                te->op = 1;
                p->pos++;
            }
            if (cur(p)->t != T_NAME)
                unexpected(p, "a test name");
            te->s = cur(p)->s;
            te->n = cur(p)->n;
            p->pos++;
            a = cur(p);
            if (is_op(a, "(")) {
                parse_args(p, te);
            } else if ((a->t == T_NAME || a->t == T_STR || a->t == T_INT || a->t == T_FLOAT ||
                        is_op(a, "[") || is_op(a, "{")) &&
                       !is_name(a, "else") && !is_name(a, "or") && !is_name(a, "and")) {
                if (is_name(a, "is"))
                    perr(p, "template syntax error: you cannot chain multiple tests with is");
                te->args = lg_jinja_alloc(p->c, sizeof *te->args);
                te->args[0] = parse_postfix(p, parse_primary(p));
                te->nargs = 1;
            }
            nd = te;
        } else if (is_op(t, "(")) {
            struct jnode *call = node(p, JN_CALL);
            call->a = nd;
            parse_args(p, call);
            nd = call;
        } else {
            return nd;
        }
    }
}

/* ( ... ): an expression, or a tuple when a comma appears; after '(' was consumed. */
static struct jnode *parse_paren(struct jparser *p) {
    struct nvec items = {0};
    int comma = 0;
    struct jnode *nd;
    while (!is_op(cur(p), ")")) {
        if (items.n) {
            expect_op(p, ",");
            comma = 1;
            if (is_op(cur(p), ")"))
                break;
        }
        nvec_push(p, &items, parse_expr(p));
    }
    p->pos++;
    if (items.n == 1 && !comma)
        return items.v[0];
    nd = node(p, JN_TUPLE);
    nd->args = items.v;
    nd->nargs = items.n;
    return nd;
}

static struct jnode *parse_primary(struct jparser *p) {
    struct jtok *t = cur(p);
    struct jnode *nd;
    enter(p);
    if (t->t == T_NAME) {
        nd = node(p, JN_LIT);
        if (is_name(t, "true") || is_name(t, "True"))
            nd->v = lg_jv_bool(1);
        else if (is_name(t, "false") || is_name(t, "False"))
            nd->v = lg_jv_bool(0);
        else if (is_name(t, "none") || is_name(t, "None"))
            nd->v = lg_jv_none();
        else {
            nd->k = JN_NAME;
            nd->s = t->s;
            nd->n = t->n;
        }
        p->pos++;
    } else if (t->t == T_STR) {
        /* adjacent string literals are concatenated */
        size_t total = 0, k = p->pos;
        char *s;
        while (p->tk[k].t == T_STR)
            total += p->tk[k++].n;
        s = lg_jinja_alloc(p->c, total + 1);
        total = 0;
        while (cur(p)->t == T_STR) {
            memcpy(s + total, cur(p)->s, cur(p)->n);
            total += cur(p)->n;
            p->pos++;
        }
        nd = node(p, JN_LIT);
        nd->line = t->line;
        nd->v = lg_jv_str(s, total);
    } else if (t->t == T_INT || t->t == T_FLOAT) {
        nd = node(p, JN_LIT);
        if (t->t == T_INT) {
            nd->v = lg_jv_int(t->i);
        } else {
            nd->v.t = JT_FLOAT;
            nd->v.u.f = t->f;
        }
        p->pos++;
    } else if (is_op(t, "(")) {
        p->pos++;
        nd = parse_paren(p);
    } else if (is_op(t, "[")) {
        struct nvec items = {0};
        p->pos++;
        while (!is_op(cur(p), "]")) {
            if (items.n) {
                expect_op(p, ",");
                if (is_op(cur(p), "]"))
                    break;
            }
            nvec_push(p, &items, parse_expr(p));
        }
        p->pos++;
        nd = node(p, JN_LIST);
        nd->args = items.v;
        nd->nargs = items.n;
    } else if (is_op(t, "{")) {
        struct nvec keys = {0}, vals = {0};
        p->pos++;
        while (!is_op(cur(p), "}")) {
            if (keys.n) {
                expect_op(p, ",");
                if (is_op(cur(p), "}"))
                    break;
            }
            nvec_push(p, &keys, parse_expr(p));
            expect_op(p, ":");
            nvec_push(p, &vals, parse_expr(p));
        }
        p->pos++;
        nd = node(p, JN_DICT);
        nd->args = keys.v;
        nd->nargs = keys.n;
        nd->body = vals.v;
        nd->nbody = vals.n;
    } else {
        unexpected(p, "an expression");
    }
    p->depth--;
    return nd;
}

static struct jnode *parse_unary(struct jparser *p, int with_filter) {
    struct jnode *nd;
    enter(p);
    if (is_op(cur(p), "-") || is_op(cur(p), "+")) {
        int op = cur(p)->s[0];
        nd = node(p, JN_UNARY);
        p->pos++;
        nd->op = (uint8_t)op;
        nd->a = parse_unary(p, 0);
    } else {
        nd = parse_primary(p);
    }
    nd = parse_postfix(p, nd);
    if (with_filter)
        nd = parse_filter_expr(p, nd);
    p->depth--;
    return nd;
}

static struct jnode *parse_pow(struct jparser *p) {
    struct jnode *a = parse_unary(p, 1);
    while (is_op(cur(p), "**")) {
        p->pos++;
        a = bin(p, JN_BIN, JO_POW, a, parse_unary(p, 1));
    }
    return a;
}

static struct jnode *parse_math2(struct jparser *p) {
    struct jnode *a = parse_pow(p);
    for (;;) {
        int op = is_op(cur(p), "*") ? JO_MUL : is_op(cur(p), "/") ? JO_DIV
                 : is_op(cur(p), "//") ? JO_FLOORDIV : is_op(cur(p), "%") ? JO_MOD : 0;
        if (!op)
            return a;
        p->pos++;
        a = bin(p, JN_BIN, op, a, parse_pow(p));
    }
}

static struct jnode *parse_concat(struct jparser *p) {
    struct jnode *a = parse_math2(p);
    while (is_op(cur(p), "~")) {
        p->pos++;
        a = bin(p, JN_BIN, JO_CONCAT, a, parse_math2(p));
    }
    return a;
}

static struct jnode *parse_math1(struct jparser *p) {
    struct jnode *a = parse_concat(p);
    for (;;) {
        int op = is_op(cur(p), "+") ? JO_ADD : is_op(cur(p), "-") ? JO_SUB : 0;
        if (!op)
            return a;
        p->pos++;
        a = bin(p, JN_BIN, op, a, parse_concat(p));
    }
}

static struct jnode *parse_compare(struct jparser *p) {
    struct jnode *a = parse_math1(p), *res = NULL;
    for (;;) {
        struct jtok *t = cur(p);
        int op = is_op(t, "==") ? JO_EQ : is_op(t, "!=") ? JO_NE : is_op(t, "<") ? JO_LT
                 : is_op(t, "<=") ? JO_LE : is_op(t, ">") ? JO_GT : is_op(t, ">=") ? JO_GE
                 : is_name(t, "in") ? JO_IN : 0;
        struct jnode *b, *cmp;
        if (!op && is_name(t, "not") && is_name(peek(p, 1), "in")) {
            op = JO_NOTIN;
            p->pos++;
        }
        if (!op)
            return res ? res : a;
        p->pos++;
        b = parse_math1(p);
        cmp = bin(p, JN_BIN, op, a, b);
        res = res ? bin(p, JN_AND, 0, res, cmp) : cmp;
        a = b;
    }
}

static struct jnode *parse_not(struct jparser *p) {
    struct jnode *nd;
    if (is_name(cur(p), "not")) {
        enter(p);
        nd = node(p, JN_UNARY);
        nd->op = '!';
        p->pos++;
        nd->a = parse_not(p);
        p->depth--;
        return nd;
    }
    return parse_compare(p);
}

static struct jnode *parse_and(struct jparser *p) {
    struct jnode *a = parse_not(p);
    while (is_name(cur(p), "and")) {
        p->pos++;
        a = bin(p, JN_AND, 0, a, parse_not(p));
    }
    return a;
}

static struct jnode *parse_or(struct jparser *p) {
    struct jnode *a = parse_and(p);
    while (is_name(cur(p), "or")) {
        p->pos++;
        a = bin(p, JN_OR, 0, a, parse_and(p));
    }
    return a;
}

static struct jnode *parse_expr(struct jparser *p) {
    struct jnode *a;
    enter(p);
    a = parse_or(p);
    while (is_name(cur(p), "if")) {
        struct jnode *cnd = node(p, JN_COND);
        p->pos++;
        cnd->b = a;
        cnd->a = parse_or(p);
        if (is_name(cur(p), "else")) {
            p->pos++;
            cnd->c = parse_expr(p);
        }
        a = cnd;
    }
    p->depth--;
    return a;
}

/* An expression, or a bare tuple "a, b" (in {{ }}, set values and for iterables). */
static struct jnode *parse_tuple(struct jparser *p, int with_cond) {
    struct nvec items = {0};
    struct jnode *nd;
    int comma = 0;
    for (;;) {
        nvec_push(p, &items, with_cond ? parse_expr(p) : parse_or(p));
        if (!is_op(cur(p), ","))
            break;
        comma = 1;
        p->pos++;
        if (cur(p)->t == T_VEND || cur(p)->t == T_BEND || is_name(cur(p), "if") ||
            is_name(cur(p), "recursive"))
            break;
    }
    if (!comma)
        return items.v[0];
    nd = node(p, JN_TUPLE);
    nd->args = items.v;
    nd->nargs = items.n;
    return nd;
}

/* Assignment target: a name, names separated by commas (optionally in parentheses),
 * or with allow_attr a namespace attribute "ns.attr". */
static struct jnode *parse_target(struct jparser *p, int allow_attr) {
    struct nvec items = {0};
    struct jnode *nd;
    int paren = 0;
    if (is_op(cur(p), "(")) {
        paren = 1;
        p->pos++;
    }
    for (;;) {
        struct jtok *t = cur(p);
        if (t->t != T_NAME)
            unexpected(p, "a variable name");
        nd = node(p, JN_NAME);
        nd->s = t->s;
        nd->n = t->n;
        p->pos++;
        if (allow_attr && !paren && !items.n && is_op(cur(p), ".")) {
            struct jnode *g = node(p, JN_GETATTR);
            p->pos++;
            if (cur(p)->t != T_NAME)
                unexpected(p, "an attribute name");
            g->a = nd;
            g->s = cur(p)->s;
            g->n = cur(p)->n;
            p->pos++;
            return g;
        }
        nvec_push(p, &items, nd);
        if (!is_op(cur(p), ","))
            break;
        p->pos++;
    }
    if (paren)
        expect_op(p, ")");
    if (items.n == 1)
        return items.v[0];
    nd = node(p, JN_TUPLE);
    nd->args = items.v;
    nd->nargs = items.n;
    return nd;
}

static struct jnode **parse_body(struct jparser *p, const char *const *ends, size_t *n_out);

static struct jnode *parse_for(struct jparser *p) {
    struct jnode *nd = node(p, JN_FOR);
    static const char *const ends1[] = {"endfor", "else", NULL};
    static const char *const ends2[] = {"endfor", NULL};
    nd->a = parse_target(p, 0);
    expect_name(p, "in");
    nd->b = parse_tuple(p, 0);
    if (is_name(cur(p), "if")) {
        p->pos++;
        nd->c = parse_expr(p);
    }
    if (is_name(cur(p), "recursive"))
        perr(p, "unsupported: recursive for loops");
    expect_bend(p);
    p->loops++;
    nd->body = parse_body(p, ends1, &nd->nbody);
    p->loops--;
    if (is_name(cur(p), "else")) {
        p->pos++;
        expect_bend(p);
        nd->els = parse_body(p, ends2, &nd->nels);
    }
    p->pos++; /* endfor */
    expect_bend(p);
    return nd;
}

static struct jnode *parse_if(struct jparser *p) {
    struct jnode *nd = node(p, JN_IF);
    static const char *const ends1[] = {"endif", "elif", "else", NULL};
    static const char *const ends2[] = {"endif", NULL};
    enter(p);
    nd->a = parse_tuple(p, 0); /* jinja2 parse_if: no conditional expression at the top */
    expect_bend(p);
    nd->body = parse_body(p, ends1, &nd->nbody);
    if (is_name(cur(p), "elif")) {
        p->pos++;
        nd->els = lg_jinja_alloc(p->c, sizeof *nd->els);
        nd->els[0] = parse_if(p); /* consumes the endif */
        nd->nels = 1;
        p->depth--;
        return nd;
    }
    if (is_name(cur(p), "else")) {
        p->pos++;
        expect_bend(p);
        nd->els = parse_body(p, ends2, &nd->nels);
    }
    p->pos++; /* endif */
    expect_bend(p);
    p->depth--;
    return nd;
}

static struct jnode *parse_statement(struct jparser *p) {
    struct jtok *t = cur(p);
    struct jnode *nd;
    if (t->t != T_NAME)
        unexpected(p, "a statement name");
    p->pos++;
    if (is_name(t, "for"))
        return parse_for(p);
    if (is_name(t, "if"))
        return parse_if(p);
    if (is_name(t, "set")) {
        static const char *const ends[] = {"endset", NULL};
        nd = node(p, JN_SET);
        nd->a = parse_target(p, 1);
        if (is_op(cur(p), "=")) {
            p->pos++;
            nd->b = parse_tuple(p, 1);
            expect_bend(p);
            return nd;
        }
        if (nd->a->k != JN_NAME)
            unexpected(p, "'='");
        if (is_op(cur(p), "|"))
            perr(p, "unsupported: filters on a block set");
        expect_bend(p);
        nd->body = parse_body(p, ends, &nd->nbody);
        p->pos++;
        expect_bend(p);
        return nd;
    }
    if (is_name(t, "macro")) {
        static const char *const ends[] = {"endmacro", NULL};
        struct nvec params = {0};
        int loops = p->loops;
        nd = node(p, JN_MACRO);
        if (cur(p)->t != T_NAME)
            unexpected(p, "a macro name");
        nd->s = cur(p)->s;
        nd->n = cur(p)->n;
        p->pos++;
        expect_op(p, "(");
        while (!is_op(cur(p), ")")) {
            struct jnode *prm;
            if (params.n)
                expect_op(p, ",");
            if (cur(p)->t != T_NAME)
                unexpected(p, "a parameter name");
            prm = node(p, JN_NAME);
            prm->s = cur(p)->s;
            prm->n = cur(p)->n;
            p->pos++;
            if (is_op(cur(p), "=")) {
                p->pos++;
                prm->a = parse_expr(p);
            }
            nvec_push(p, &params, prm);
        }
        p->pos++;
        expect_bend(p);
        p->loops = 0;
        nd->body = parse_body(p, ends, &nd->nbody);
        p->loops = loops;
        nd->args = params.v;
        nd->nargs = params.n;
        p->pos++;
        if (cur(p)->t == T_NAME)
            p->pos++; /* {% endmacro name %} */
        expect_bend(p);
        return nd;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loops) {
            p->pos--;
            perr(p, "template syntax error: '%.*s' outside a for loop", (int)t->n, t->s);
        }
        nd = node(p, is_name(t, "break") ? JN_BREAK : JN_CONTINUE);
        expect_bend(p);
        return nd;
    }
    if (is_name(t, "with")) {
        static const char *const ends[] = {"endwith", NULL};
        struct jkw *kw = NULL;
        size_t nkw = 0, kcap = 0;
        nd = node(p, JN_WITH);
        while (cur(p)->t != T_BEND) {
            if (nkw)
                expect_op(p, ",");
            if (cur(p)->t != T_NAME)
                unexpected(p, "a variable name");
            if (nkw == kcap) {
                struct jkw *nk = lg_jinja_alloc(p->c, (kcap ? kcap * 2 : 4) * sizeof *nk);
                if (nkw)
                    memcpy(nk, kw, nkw * sizeof *nk);
                kw = nk;
                kcap = kcap ? kcap * 2 : 4;
            }
            kw[nkw].name = cur(p)->s;
            kw[nkw].nlen = cur(p)->n;
            p->pos++;
            expect_op(p, "=");
            kw[nkw++].val = parse_expr(p);
        }
        expect_bend(p);
        nd->kw = kw;
        nd->nkw = nkw;
        nd->body = parse_body(p, ends, &nd->nbody);
        p->pos++;
        expect_bend(p);
        return nd;
    }
    if (is_name(t, "generation")) {
        static const char *const ends[] = {"endgeneration", NULL};
        nd = node(p, JN_BLOCK);
        expect_bend(p);
        nd->body = parse_body(p, ends, &nd->nbody);
        p->pos++;
        expect_bend(p);
        return nd;
    }
    if (is_name(t, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        struct jnode *chain = NULL;
        uint32_t nf = 0;
        nd = node(p, JN_FILTERBLOCK);
        for (;;) {
            if (++nf > p->c->lim.max_depth) /* applied recursively */
                perr(p, "template nested too deeply (limit reached)");
            chain = parse_filter(p, chain);
            if (!is_op(cur(p), "|"))
                break;
            p->pos++;
        }
        nd->a = chain;
        expect_bend(p);
        nd->body = parse_body(p, ends, &nd->nbody);
        p->pos++;
        expect_bend(p);
        return nd;
    }
    p->pos--;
    perr(p, "unsupported statement {%% %.*s %%}", (int)t->n, t->s);
}

/* Statements up to a {% name %} with name in ends (left at that name), or to the end of
 * the template when ends is NULL. */
static struct jnode **parse_body(struct jparser *p, const char *const *ends, size_t *n_out) {
    struct nvec body = {0};
    enter(p);
    for (;;) {
        struct jtok *t = cur(p);
        struct jnode *nd;
        if (t->t == T_EOF) {
            if (ends) {
                perr(p, "template syntax error: missing {%% %s %%}", ends[0]);
            }
            break;
        }
        if (t->t == T_TEXT) {
            nd = node(p, JN_TEXT);
            nd->s = t->s;
            nd->n = t->n;
            p->pos++;
        } else if (t->t == T_VBEGIN) {
            p->pos++;
            nd = node(p, JN_OUTPUT);
            nd->a = parse_tuple(p, 1);
            nd->a->cflag = 2; /* jinja2 prints a constant root through as_const */
            if (cur(p)->t != T_VEND)
                unexpected(p, "'}}'");
            p->pos++;
        } else if (t->t == T_BBEGIN) {
            struct jtok *nt = peek(p, 1);
            size_t k;
            if (ends && nt->t == T_NAME)
                for (k = 0; ends[k]; k++)
                    if (is_name(nt, ends[k])) {
                        p->pos++;
                        goto done;
                    }
            if (nt->t == T_NAME && nt->n > 3 && (memcmp(nt->s, "end", 3) == 0 ||
                                                 is_name(nt, "elif") || is_name(nt, "else"))) {
                p->pos++;
                perr(p, "template syntax error: unexpected {%% %.*s %%}", (int)nt->n, nt->s);
            }
            if (is_name(nt, "else") || is_name(nt, "elif")) {
                p->pos++;
                perr(p, "template syntax error: unexpected {%% %.*s %%}", (int)nt->n, nt->s);
            }
            p->pos++;
            nd = parse_statement(p);
        } else {
            unexpected(p, "template text or a tag");
        }
        nvec_push(p, &body, nd);
    }
done:
    p->depth--;
    *n_out = body.n;
    return body.v;
}

struct jnode **lg_jinja_parse(struct jctx *c, const char *src, size_t len, size_t *n_body) {
    struct jparser p = {0};
    struct jnode **body;
    char *norm = lg_jinja_alloc(c, len + 1);
    size_t i, k = 0;
    /* newlines to \n, then drop one trailing newline (keep_trailing_newline=False) */
    for (i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            norm[k++] = src[i];
        }
    }
    if (k && norm[k - 1] == '\n')
        k--;
    p.c = c;
    lex(&p, norm, k);
    body = parse_body(&p, NULL, n_body);
    return body;
}
