/*
 * tok_encode.c - text to ids, following the Rust `tokenizers` pipeline step by step:
 * invalid UTF-8 replaced (Python errors="replace"), added tokens split out of the raw
 * text (AddedVocabulary::extract_and_normalize), the normalizer, added tokens split out
 * of the normalized text, the pre-tokenizers, BPE on each word (models/bpe: merge_word and
 * Word::merge_all with a min-heap on (rank, position)), then the post-processor template.
 * All scratch state lives in a struct enc of one call, so the tokenizer stays const.
 */
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

/* A piece of text: bytes [off, off+len) of the arena, and whether it starts at offset 0
 * of the original input (Metaspace prepend_scheme "first"). */
struct piece {
    size_t off, len;
    int first;
};

/* A split of a string: [start, end), and whether it is a match of the pattern. */
struct span {
    size_t start, end;
    int match;
};

/* An added-token split: [start, end) and the token id, or -1 for plain text. */
struct aseg {
    size_t start, end;
    int32_t id;
};

struct sym {
    int32_t id, prev, next;
};

struct hent {
    uint32_t rank, pos;
    int32_t id;   /* the merge result */
    int32_t l, r; /* the pair it was made for: a stale entry no longer matches */
};

struct enc {
    const struct lg_tokenizer *t;
    const struct lg_alloc *a;
    struct lg_tok_buf src;        /* sanitized input */
    struct lg_tok_buf norm;       /* normalized piece */
    struct lg_tok_buf ar;         /* arena of pre-tokenized pieces */
    struct lg_tok_buf pa, pb;     /* struct piece vectors */
    struct lg_tok_buf spans;      /* struct span vector */
    struct lg_tok_buf seg1, seg2; /* struct aseg vectors */
    struct lg_tok_buf ids;        /* int32_t */
    struct lg_tok_buf syms;       /* struct sym */
    struct lg_tok_buf heap;       /* struct hent */
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
    int err; /* enum llmgpu_status of the first failure */
};

#define VEC(b, T) ((T *)(void *)(b)->p)
#define VLEN(b, T) ((b)->len / sizeof(T))

static inline void vpush(struct lg_tok_buf *b, const void *x, size_t n) {
    if (b->len + n < b->cap) { /* the common case, inline */
        memcpy(b->p + b->len, x, n);
        b->len += n;
        return;
    }
    lg_tok_buf_put(b, x, n);
}

/* ---- code point classes ---- */
int lg_tok_is_ws(uint32_t cp) {
    utf8proc_category_t c;
    if ((cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85)
        return 1;
    if (cp < 0x80)
        return 0;
    c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

int lg_tok_is_word(uint32_t cp) {
    utf8proc_category_t c;
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    if (cp == 0x200C || cp == 0x200D)
        return 1;
    c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_ND ||
           c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC;
}

static int is_numeric(uint32_t cp) {
    utf8proc_category_t c;
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* Decode one code point of valid UTF-8. */
static uint32_t cp_at(const char *s, size_t n, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    size_t bad;
    *len = lg_tok_utf8_valid(u, n, &cp, &bad);
    if (!*len) { /* cannot happen on sanitized text; step one byte */
        *len = 1;
        return 0xFFFD;
    }
    return cp;
}

/* Start of the code point ending at s[n]. */
static size_t cp_back(const char *s, size_t n) {
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && n - i < 3)
        i--;
    return i > 0 ? i - 1 : 0;
}

/* ---- normalizers ---- */
static int norm_unicode(const char *s, size_t n, utf8proc_option_t opt, struct lg_tok_buf *out) {
    utf8proc_ssize_t cps, len;
    size_t i, bytes;
    int32_t *buf;
    for (i = 0; i < n && !((unsigned char)s[i] & 0x80); i++)
        ;
    if (i == n) { /* ASCII is invariant under every normalization form */
        lg_tok_buf_put(out, s, n);
        return out->oom ? -1 : 0;
    }
    opt |= UTF8PROC_STABLE;
    cps = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, NULL, 0, opt);
    if (cps < 0)
        return -1;
    if (lg_mul_size((size_t)cps + 1, 4, &bytes) || lg_tok_buf_reserve(out, bytes))
        return -1;
    buf = (int32_t *)(void *)(out->p + LG_ALIGN_UP(out->len, 4));
    if (LG_ALIGN_UP(out->len, 4) + bytes > out->cap) { /* alignment slack */
        if (lg_tok_buf_reserve(out, bytes + 4))
            return -1;
        buf = (int32_t *)(void *)(out->p + LG_ALIGN_UP(out->len, 4));
    }
    cps = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, buf, cps, opt);
    if (cps < 0)
        return -1;
    len = utf8proc_reencode(buf, cps, opt);
    if (len < 0)
        return -1;
    memmove(out->p + out->len, buf, (size_t)len);
    out->len += (size_t)len;
    return 0;
}

static void replace_literal(const char *s, size_t n, const char *pat, size_t pn, const char *rep,
                            size_t rn, struct lg_tok_buf *out) {
    size_t i = 0, run = 0;
    if (pn == 0) {
        lg_tok_buf_put(out, s, n);
        return;
    }
    while (i + pn <= n) {
        if (s[i] == pat[0] && !memcmp(s + i, pat, pn)) {
            lg_tok_buf_put(out, s + run, i - run);
            lg_tok_buf_put(out, rep, rn);
            i += pn;
            run = i;
        } else {
            i++;
        }
    }
    lg_tok_buf_put(out, s + run, n - run);
}

/* Regex replace-all; returns -1 on a match error, -2 when s is not valid UTF-8 (only a
 * tokenizer.json string can make it so: the input text is sanitized first). */
static int replace_regex(const struct lg_tokenizer *t, pcre2_code *re, const char *s, size_t n,
                         const char *rep, size_t rn, struct lg_tok_buf *out) {
    pcre2_match_data *md;
    size_t pos = 0, run = 0;
    int rc = 0;
    if (lg_tok_utf8_valid_prefix(s, n) != n) /* PCRE2_NO_UTF_CHECK below needs valid UTF-8 */
        return -2;
    if (!(md = pcre2_match_data_create(16, t->gctx)))
        return -1;
    while (pos <= n) {
        PCRE2_SIZE *ov;
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0)
            break;
        ov = pcre2_get_ovector_pointer(md);
        lg_tok_buf_put(out, s + run, ov[0] - run);
        lg_tok_buf_put(out, rep, rn);
        run = ov[1];
        if (ov[1] == ov[0]) {
            size_t l;
            if (ov[1] >= n)
                break;
            (void)cp_at(s + ov[1], n - ov[1], &l);
            lg_tok_buf_put(out, s + ov[1], l);
            run = pos = ov[1] + l;
        } else {
            pos = ov[1];
        }
    }
    if (run < n)
        lg_tok_buf_put(out, s + run, n - run);
    pcre2_match_data_free(md);
    return rc < 0 && rc != PCRE2_ERROR_NOMATCH ? -1 : 0;
}

static void lowercase(const char *s, size_t n, struct lg_tok_buf *out) {
    size_t i = 0, l;
    while (i < n) {
        uint32_t cp = cp_at(s + i, n - i, &l);
        if (cp == 0x130) { /* Rust's full lowercase mapping of U+0130 */
            lg_tok_buf_put(out, "i\xCC\x87", 3);
        } else {
            lg_tok_buf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        }
        i += l;
    }
}

static int norm_one(const struct lg_tokenizer *t, const struct lg_norm *x, const char *s, size_t n,
                    struct lg_tok_buf *out) {
    switch (x->kind) {
    case LG_NORM_NFC:
        return norm_unicode(s, n, UTF8PROC_COMPOSE, out);
    case LG_NORM_NFD:
        return norm_unicode(s, n, UTF8PROC_DECOMPOSE, out);
    case LG_NORM_NFKC:
        return norm_unicode(s, n, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case LG_NORM_NFKD:
        return norm_unicode(s, n, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case LG_NORM_LOWERCASE:
        lowercase(s, n, out);
        break;
    case LG_NORM_PREPEND:
        if (n)
            lg_tok_buf_put(out, x->s1, x->s1_len);
        lg_tok_buf_put(out, s, n);
        break;
    case LG_NORM_REPLACE:
        if (x->re)
            return replace_regex(t, x->re, s, n, x->s2, x->s2_len, out);
        replace_literal(s, n, x->s1, x->s1_len, x->s2, x->s2_len, out);
        break;
    case LG_NORM_STRIP: {
        size_t b = 0, e = n, l;
        while (x->left && b < e && lg_tok_is_ws(cp_at(s + b, e - b, &l)))
            b += l;
        while (x->right && e > b) {
            size_t k = cp_back(s, e);
            if (!lg_tok_is_ws(cp_at(s + k, e - k, &l)))
                break;
            e = k;
        }
        lg_tok_buf_put(out, s + b, e - b);
        break;
    }
    }
    return out->oom ? -1 : 0;
}

int lg_tok_normalize(const struct lg_tokenizer *t, const char *s, size_t n,
                     struct lg_tok_buf *out) {
    struct lg_tok_buf a, b;
    uint32_t i;
    int rc = 0;
    if (t->n_norm == 0) {
        lg_tok_buf_put(out, s, n);
        return out->oom ? -1 : 0;
    }
    if (t->n_norm == 1)
        return norm_one(t, &t->norm[0], s, n, out);
    lg_tok_buf_init(&a, out->a);
    lg_tok_buf_init(&b, out->a);
    lg_tok_buf_put(&a, s, n);
    for (i = 0; i < t->n_norm && !rc; i++) {
        struct lg_tok_buf *dst = i + 1 == t->n_norm ? out : &b;
        if (dst == &b)
            b.len = 0;
        rc = norm_one(t, &t->norm[i], a.p ? a.p : "", a.len, dst);
        if (dst == &b) {
            struct lg_tok_buf x = a;
            a = b;
            b = x;
        }
    }
    if (a.oom || b.oom)
        rc = -1;
    lg_tok_buf_free(&a);
    lg_tok_buf_free(&b);
    return rc;
}

/* ---- regex matching with a growable JIT stack ----
 * s must be valid UTF-8 (PCRE2_NO_UTF_CHECK); pre_split checks each piece once. */
static int re_match(struct enc *e, pcre2_code *re, const char *s, size_t n, size_t pos, size_t *ms,
                    size_t *me) {
    int rc;
    PCRE2_SIZE *ov;
    if (!e->md && !(e->md = pcre2_match_data_create(16, e->t->gctx)))
        return -2;
    rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md, e->mc);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !e->js) {
        e->mc = pcre2_match_context_create(e->t->gctx);
        e->js = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, e->t->gctx);
        if (!e->mc || !e->js)
            return -2;
        pcre2_jit_stack_assign(e->mc, NULL, e->js);
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md, e->mc);
    }
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -2;
    ov = pcre2_get_ovector_pointer(e->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* ---- added tokens (AddedVocabulary::find_matches) ---- */
static void find_added(struct enc *e, const char *s, size_t n, int normalized, int parse_special,
                       struct lg_tok_buf *out) {
    const struct lg_tokenizer *t = e->t;
    const uint8_t *first = normalized ? t->added_first_norm : t->added_first_raw;
    size_t pos = 0, start_offset = 0;
    struct aseg g;
    out->len = 0;
    while (pos < n) {
        size_t best_len = 0, start, stop, l;
        int32_t best = -1;
        uint32_t k;
        const struct lg_added *x;
        if (!first[(unsigned char)s[pos]]) {
            pos++;
            continue;
        }
        for (k = 0; k < t->n_added; k++) {
            x = &t->added[k];
            if ((int)x->normalized != normalized || x->match_len <= best_len ||
                x->match_len > n - pos || memcmp(s + pos, x->match, x->match_len))
                continue;
            best = (int32_t)k;
            best_len = x->match_len;
        }
        if (best < 0) {
            pos++;
            continue;
        }
        x = &t->added[best];
        start = pos;
        stop = pos + best_len;
        pos = stop;
        if (!parse_special && x->special)
            continue;
        if (x->single_word) {
            int start_space = 1, stop_space = 1;
            if (start > 0) {
                size_t b = cp_back(s, start);
                start_space = !lg_tok_is_word(cp_at(s + b, start - b, &l));
            }
            if (stop < n)
                stop_space = !lg_tok_is_word(cp_at(s + stop, n - stop, &l));
            if (!start_space || !stop_space)
                continue;
        }
        if (x->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t b = cp_back(s, ns);
                if (!lg_tok_is_ws(cp_at(s + b, ns - b, &l)))
                    break;
                ns = b;
            }
            start = LG_MAX(ns, start_offset);
        }
        if (x->rstrip) {
            while (stop < n && lg_tok_is_ws(cp_at(s + stop, n - stop, &l)))
                stop += l;
        }
        if (start_offset < start) {
            g.start = start_offset;
            g.end = start;
            g.id = -1;
            vpush(out, &g, sizeof g);
        }
        g.start = start;
        g.end = stop;
        g.id = x->id;
        vpush(out, &g, sizeof g);
        start_offset = stop;
        if (pos < stop)
            pos = stop; /* rstrip consumed past the match */
    }
    if (start_offset < n) {
        g.start = start_offset;
        g.end = n;
        g.id = -1;
        vpush(out, &g, sizeof g);
    }
}

/* ---- pre-tokenizers ---- */
static void piece_out(struct enc *e, size_t off, size_t len, int first) {
    struct piece p;
    if (len == 0)
        return; /* PreTokenizedString::split drops empty pieces */
    p.off = off;
    p.len = len;
    p.first = first;
    vpush(&e->pb, &p, sizeof p);
}

/* Append bytes of the arena itself to the arena (the buffer may move). */
static size_t arena_dup(struct enc *e, size_t off, size_t len) {
    size_t at = e->ar.len;
    if (lg_tok_buf_reserve(&e->ar, len))
        return at;
    memmove(e->ar.p + at, e->ar.p + off, len);
    e->ar.len += len;
    return at;
}

static void span_add(struct enc *e, size_t s, size_t end, int match) {
    struct span sp;
    sp.start = s;
    sp.end = end;
    sp.match = match;
    vpush(&e->spans, &sp, sizeof sp);
}

/* Split piece p at the spans in e->spans per behavior (NormalizedString::split). */
static void split_apply(struct enc *e, const struct piece *p, enum lg_split_behavior bh,
                        int invert) {
    struct span *sp = VEC(&e->spans, struct span);
    size_t n = VLEN(&e->spans, struct span), i, k = 0;
    int prev = 0;
    if (e->spans.oom)
        return;
    for (i = 0; i < n; i++)
        if (invert)
            sp[i].match = !sp[i].match;
    /* merge in place into sp[0..k), each kept entry's match field meaning "remove" */
    switch (bh) {
    case LG_SPLIT_REMOVED:
        k = n;
        break;
    case LG_SPLIT_ISOLATED:
        for (i = 0; i < n; i++)
            sp[i].match = 0;
        k = n;
        break;
    case LG_SPLIT_CONTIGUOUS:
        for (i = 0; i < n; i++) {
            int m = sp[i].match;
            if (m == prev && k > 0) {
                sp[k - 1].end = sp[i].end;
            } else {
                sp[k] = sp[i];
                sp[k++].match = 0;
            }
            prev = m;
        }
        break;
    case LG_SPLIT_MERGED_WITH_PREVIOUS:
        for (i = 0; i < n; i++) {
            int m = sp[i].match;
            if (m && !prev && k > 0) {
                sp[k - 1].end = sp[i].end;
            } else {
                sp[k] = sp[i];
                sp[k++].match = 0;
            }
            prev = m;
        }
        break;
    case LG_SPLIT_MERGED_WITH_NEXT: {
        /* walk backwards, then the kept entries are in reverse order at the end */
        size_t w = n;
        for (i = n; i-- > 0;) {
            int m = sp[i].match;
            if (m && !prev && w < n) {
                sp[w].start = sp[i].start;
            } else {
                sp[--w] = sp[i];
                sp[w].match = 0;
            }
            prev = m;
        }
        memmove(sp, sp + w, (n - w) * sizeof *sp);
        k = n - w;
        break;
    }
    }
    for (i = 0; i < k; i++)
        if (!sp[i].match)
            piece_out(e, p->off + sp[i].start, sp[i].end - sp[i].start,
                      p->first && sp[i].start == 0);
}

static void pre_split(struct enc *e, const struct lg_pre *x, const struct piece *p) {
    size_t pos = 0, prev = 0, ms, me, n = p->len;
    e->spans.len = 0;
    if (x->re && lg_tok_utf8_valid_prefix(e->ar.p + p->off, n) != n) {
        /* only invalid UTF-8 in a tokenizer.json string (a Replace content, a Prepend) can
         * get here; matching it with PCRE2_NO_UTF_CHECK would read out of bounds */
        e->err = LLMGPU_ERR_BAD_TOKENIZER;
        return;
    }
    while (pos <= n) {
        const char *s = e->ar.p + p->off;
        int rc;
        if (x->re) {
            rc = re_match(e, x->re, s, n, pos, &ms, &me);
            if (rc < 0) {
                e->err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
                return;
            }
        } else {
            size_t i;
            rc = 0;
            for (i = pos; i + x->s1_len <= n; i++)
                if (!memcmp(s + i, x->s1, x->s1_len)) {
                    ms = i;
                    me = i + x->s1_len;
                    rc = 1;
                    break;
                }
        }
        if (rc == 0)
            break;
        if (me == ms) { /* an empty match splits nothing; step over one character */
            size_t l;
            if (ms >= n)
                break;
            (void)cp_at(s + ms, n - ms, &l);
            pos = ms + l;
            continue;
        }
        if (prev != ms)
            span_add(e, prev, ms, 0);
        span_add(e, ms, me, 1);
        prev = pos = me;
    }
    if (prev != n)
        span_add(e, prev, n, 0);
    split_apply(e, p, x->behavior, x->invert);
}

/* Split at each code point for which pred holds. */
static void pre_split_chars(struct enc *e, const struct piece *p, int (*pred)(uint32_t),
                            enum lg_split_behavior bh) {
    size_t i = 0, l, prev = 0;
    const char *s = e->ar.p + p->off;
    e->spans.len = 0;
    while (i < p->len) {
        uint32_t cp = cp_at(s + i, p->len - i, &l);
        if (pred(cp)) {
            if (prev != i)
                span_add(e, prev, i, 0);
            span_add(e, i, i + l, 1);
            prev = i + l;
        }
        i += l;
    }
    if (prev != p->len)
        span_add(e, prev, p->len, 0);
    split_apply(e, p, bh, 0);
}

static void pre_bytelevel(struct enc *e, const struct lg_pre *x, const struct piece *p) {
    struct piece q = *p;
    size_t start = e->pb.len / sizeof(struct piece), i, j, end;
    if (x->add_prefix_space && (q.len == 0 || e->ar.p[q.off] != ' ')) {
        size_t at = e->ar.len;
        lg_tok_buf_putc(&e->ar, ' ');
        arena_dup(e, q.off, q.len);
        q.off = at;
        q.len++;
    }
    if (x->use_regex) {
        struct lg_pre sx;
        memset(&sx, 0, sizeof sx);
        sx.kind = LG_PRE_SPLIT;
        sx.re = x->re;
        sx.behavior = LG_SPLIT_ISOLATED;
        pre_split(e, &sx, &q);
    } else {
        piece_out(e, q.off, q.len, q.first);
    }
    /* map the bytes of each new piece to the byte-level alphabet */
    end = e->pb.len / sizeof(struct piece);
    for (i = start; i < end && !e->ar.oom && !e->pb.oom; i++) {
        struct piece *r = &VEC(&e->pb, struct piece)[i];
        size_t at = e->ar.len, len = r->len, off = r->off;
        if (lg_tok_buf_reserve(&e->ar, len * 2))
            break;
        for (j = 0; j < len; j++) {
            uint16_t cp = lg_tok_byte_to_cp[(unsigned char)e->ar.p[off + j]];
            if (cp < 0x80) {
                e->ar.p[e->ar.len++] = (char)cp;
            } else {
                e->ar.p[e->ar.len++] = (char)(0xC0 | (cp >> 6));
                e->ar.p[e->ar.len++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        r->off = at;
        r->len = e->ar.len - at;
    }
}

static void pre_metaspace(struct enc *e, const struct lg_pre *x, const struct piece *p) {
    size_t at = e->ar.len, i, n = p->len;
    struct piece q;
    int prepend = 0;
    /* replace ' ' by the replacement, prepending it per the scheme */
    if (lg_tok_buf_reserve(&e->ar, n * x->s1_len + x->s1_len))
        return;
    if (x->prepend != LG_PREPEND_NEVER && (x->prepend == LG_PREPEND_ALWAYS || p->first)) {
        const char *s = e->ar.p + p->off;
        int starts = n >= x->s1_len && !memcmp(s, x->s1, x->s1_len);
        if (!starts && !(n > 0 && s[0] == ' ')) /* a leading ' ' becomes the replacement */
            prepend = 1;
    }
    if (prepend)
        lg_tok_buf_put(&e->ar, x->s1, x->s1_len);
    for (i = 0; i < n; i++) {
        char c = e->ar.p[p->off + i];
        if (c == ' ')
            lg_tok_buf_put(&e->ar, x->s1, x->s1_len);
        else
            lg_tok_buf_putc(&e->ar, c);
    }
    q.off = at;
    q.len = e->ar.len - at;
    q.first = p->first;
    if (!x->split) {
        piece_out(e, q.off, q.len, q.first);
        return;
    }
    {
        struct lg_pre sx;
        memset(&sx, 0, sizeof sx);
        sx.kind = LG_PRE_SPLIT;
        sx.s1 = x->s1;
        sx.s1_len = x->s1_len;
        sx.behavior = LG_SPLIT_MERGED_WITH_NEXT;
        pre_split(e, &sx, &q);
    }
}

static void pre_step(struct enc *e, const struct lg_pre *x, const struct piece *p) {
    switch (x->kind) {
    case LG_PRE_SPLIT:
        pre_split(e, x, p);
        break;
    case LG_PRE_BYTELEVEL:
        pre_bytelevel(e, x, p);
        break;
    case LG_PRE_METASPACE:
        pre_metaspace(e, x, p);
        break;
    case LG_PRE_DIGITS:
        pre_split_chars(e, p, is_numeric,
                        x->individual_digits ? LG_SPLIT_ISOLATED : LG_SPLIT_CONTIGUOUS);
        break;
    case LG_PRE_WSPLIT:
        pre_split_chars(e, p, lg_tok_is_ws, LG_SPLIT_REMOVED);
        break;
    }
}

/* ---- BPE ---- */
static int merge_get(const struct lg_tokenizer *t, int32_t l, int32_t r, uint32_t *rank,
                     int32_t *id) {
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t mask = t->merges_cap - 1, h;
    if (!(t->merge_side[l] & 1) || !(t->merge_side[r] & 2))
        return 0; /* a small table that stays in cache answers most misses */
    h = (size_t)lg_tok_hash64(key) & mask;
    for (;; h = (h + 1) & mask) {
        const struct lg_merge_slot *m = &t->merges[h];
        if (m->key == key) {
            *rank = m->rank;
            *id = m->id;
            return 1;
        }
        if (!m->key)
            return 0;
    }
}

static int hless(const struct hent *a, const struct hent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct enc *e, uint32_t rank, uint32_t pos, int32_t id, int32_t l,
                      int32_t r) {
    struct hent x, *h;
    size_t i;
    x.rank = rank;
    x.pos = pos;
    x.id = id;
    x.l = l;
    x.r = r;
    vpush(&e->heap, &x, sizeof x);
    if (e->heap.oom)
        return;
    h = VEC(&e->heap, struct hent);
    i = VLEN(&e->heap, struct hent) - 1;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!hless(&h[i], &h[up]))
            break;
        x = h[i];
        h[i] = h[up];
        h[up] = x;
        i = up;
    }
}

static struct hent heap_pop(struct enc *e) {
    struct hent *h = VEC(&e->heap, struct hent), top = h[0], x;
    size_t n = VLEN(&e->heap, struct hent) - 1, i = 0;
    h[0] = h[n];
    e->heap.len -= sizeof(struct hent);
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && hless(&h[l], &h[m]))
            m = l;
        if (r < n && hless(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
    return top;
}

static void sym_add(struct enc *e, int32_t id) {
    struct sym s;
    int32_t n = (int32_t)VLEN(&e->syms, struct sym);
    s.id = id;
    s.prev = n - 1;
    s.next = n + 1;
    vpush(&e->syms, &s, sizeof s);
}

static void emit(struct enc *e, int32_t id) {
    vpush(&e->ids, &id, sizeof id);
}

static void bpe_word(struct enc *e, const char *w, size_t n) {
    const struct lg_tokenizer *t = e->t;
    size_t i = 0, l, ns;
    int32_t unk = -1, id;
    struct sym *sy;
    uint32_t rank;
    if (n == 0)
        return;
    /* a word that is a vocabulary token: with ignore_merges it is that token; otherwise
     * it is when BPE of the token's own string gives it back, which lg_tok_bpe_selfcheck
     * determined at load (an exact shortcut, like a cache that never misses) */
    if ((t->ignore_merges || t->self_merging) && (id = lg_tok_vocab_get(t, w, n)) >= 0 &&
        (t->ignore_merges || (t->self_merging[id >> 3] >> (id & 7) & 1))) {
        emit(e, id);
        return;
    }
    e->syms.len = 0;
    while (i < n) {
        uint32_t cp = cp_at(w + i, n - i, &l);
        if (cp < LG_ARRAY_LEN(t->char_id))
            id = t->char_id[cp];
        else if (cp == 0x2581)
            id = t->sp_id;
        else
            id = lg_tok_vocab_get(t, w + i, l);
        if (id >= 0) {
            if (unk >= 0) {
                sym_add(e, unk);
                unk = -1;
            }
            sym_add(e, id);
        } else {
            size_t k;
            int all = t->byte_fallback;
            for (k = 0; all && k < l; k++)
                all = t->byte_id[(unsigned char)w[i + k]] >= 0;
            if (all) {
                for (k = 0; k < l; k++)
                    sym_add(e, t->byte_id[(unsigned char)w[i + k]]);
            } else if (t->unk_id >= 0) {
                if (unk >= 0 && !t->fuse_unk)
                    sym_add(e, unk);
                unk = t->unk_id;
            }
        }
        i += l;
    }
    if (unk >= 0)
        sym_add(e, unk);
    if (e->syms.oom)
        return;
    ns = VLEN(&e->syms, struct sym);
    if (ns == 0)
        return;
    sy = VEC(&e->syms, struct sym);
    sy[ns - 1].next = -1;
    e->heap.len = 0;
    for (i = 0; i + 1 < ns; i++)
        if (merge_get(t, sy[i].id, sy[i + 1].id, &rank, &id))
            heap_push(e, rank, (uint32_t)i, id, sy[i].id, sy[i + 1].id);
    while (e->heap.len && !e->heap.oom) {
        struct hent top = heap_pop(e);
        int32_t nx, r2;
        sy = VEC(&e->syms, struct sym);
        if (sy[top.pos].id != top.l || (nx = sy[top.pos].next) < 0 || sy[nx].id != top.r)
            continue; /* expired: one side was merged since (Word::merge_all's check) */
        sy[top.pos].id = top.id;
        sy[top.pos].next = sy[nx].next;
        sy[nx].id = -1;
        if (sy[nx].next >= 0)
            sy[sy[nx].next].prev = (int32_t)top.pos;
        if (sy[top.pos].prev >= 0) {
            int32_t pv = sy[top.pos].prev;
            if (merge_get(t, sy[pv].id, top.id, &rank, &r2))
                heap_push(e, rank, (uint32_t)pv, r2, sy[pv].id, top.id);
        }
        sy = VEC(&e->syms, struct sym);
        if (sy[top.pos].next >= 0) {
            if (merge_get(t, top.id, sy[sy[top.pos].next].id, &rank, &r2))
                heap_push(e, rank, top.pos, r2, top.id, sy[sy[top.pos].next].id);
        }
    }
    sy = VEC(&e->syms, struct sym);
    for (i = 0; i < ns && !e->ids.oom; i = sy[i].next < 0 ? ns : (size_t)sy[i].next)
        emit(e, sy[i].id);
}

/* BPE of one pre-tokenized piece. When no vocabulary string has U+2581 after another
 * character (t->sp_split), no merge can cross a boundary before a run of U+2581, so the
 * piece is cut there into independent words: exact, and fast for SentencePiece texts
 * that arrive as one long piece. */
static void bpe_piece(struct enc *e, const char *s, size_t n) {
    size_t i, start = 0;
    if (!e->t->sp_split || n < 6) {
        bpe_word(e, s, n);
        return;
    }
    for (i = 1; i + 3 <= n; i++)
        if (!memcmp(s + i, "\xE2\x96\x81", 3) &&
            !(i >= 3 && !memcmp(s + i - 3, "\xE2\x96\x81", 3))) {
            bpe_word(e, s + start, i - start);
            start = i;
        }
    bpe_word(e, s + start, n - start);
}

/* ---- one plain-text piece: pre-tokenize and run the model ---- */
static void encode_plain(struct enc *e, const char *s, size_t n, int first) {
    const struct lg_tokenizer *t = e->t;
    struct piece p;
    size_t i, np;
    uint32_t k;
    if (n == 0)
        return;
    if (t->n_pre == 0) {
        bpe_piece(e, s, n);
        return;
    }
    e->ar.len = 0;
    e->pa.len = 0;
    lg_tok_buf_put(&e->ar, s, n);
    p.off = 0;
    p.len = n;
    p.first = first;
    vpush(&e->pa, &p, sizeof p);
    for (k = 0; k < t->n_pre && !e->err; k++) {
        struct lg_tok_buf tmp;
        e->pb.len = 0;
        np = VLEN(&e->pa, struct piece);
        for (i = 0; i < np && !e->err; i++) {
            struct piece q = VEC(&e->pa, struct piece)[i];
            pre_step(e, &t->pre[k], &q);
        }
        tmp = e->pa;
        e->pa = e->pb;
        e->pb = tmp;
        if (e->ar.oom || e->pa.oom || e->pb.oom || e->spans.oom)
            return;
    }
    np = VLEN(&e->pa, struct piece);
    for (i = 0; i < np && !e->err; i++) {
        p = VEC(&e->pa, struct piece)[i];
        bpe_piece(e, e->ar.p + p.off, p.len);
    }
}

static int oom_any(const struct enc *e) {
    return e->src.oom || e->norm.oom || e->ar.oom || e->pa.oom || e->pb.oom ||
           e->spans.oom || e->seg1.oom || e->seg2.oom || e->ids.oom || e->syms.oom || e->heap.oom;
}

static void encode_text(struct enc *e, const char *s, size_t n, uint32_t flags) {
    const struct lg_tokenizer *t = e->t;
    int parse_special = (flags & LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL) != 0, rc;
    size_t i, j, n1, n2;
    find_added(e, s, n, 0, parse_special, &e->seg1);
    n1 = VLEN(&e->seg1, struct aseg);
    for (i = 0; i < n1 && !e->err && !oom_any(e); i++) {
        struct aseg g = VEC(&e->seg1, struct aseg)[i];
        if (g.id >= 0) {
            emit(e, g.id);
            continue;
        }
        e->norm.len = 0;
        if ((rc = lg_tok_normalize(t, s + g.start, g.end - g.start, &e->norm)) != 0) {
            e->err = rc == -2 ? LLMGPU_ERR_BAD_TOKENIZER : LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            return;
        }
        if (!e->norm.len)
            continue;
        find_added(e, e->norm.p, e->norm.len, 1, parse_special, &e->seg2);
        n2 = VLEN(&e->seg2, struct aseg);
        for (j = 0; j < n2 && !e->err && !oom_any(e); j++) {
            struct aseg h = VEC(&e->seg2, struct aseg)[j];
            if (h.id >= 0)
                emit(e, h.id);
            else
                encode_plain(e, e->norm.p + h.start, h.end - h.start, g.start == 0 && h.start == 0);
        }
    }
}

static void enc_init(struct enc *e, const struct lg_tokenizer *t);
static void enc_free(struct enc *e);

enum llmgpu_status lg_tok_bpe_selfcheck(struct lg_tokenizer *t) {
    struct enc e;
    uint32_t id;
    uint8_t *bits;
    enum llmgpu_status st = LLMGPU_OK;
    if (t->ignore_merges)
        return LLMGPU_OK;
    bits = lg_calloc(t->a, (t->n_vocab + 7) / 8, 1);
    if (!bits)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    enc_init(&e, t);
    for (id = 0; id < t->n_vocab; id++) {
        if (t->vtok_off[id] == UINT32_MAX || t->vtok_len[id] < 2)
            continue;
        e.ids.len = 0;
        bpe_word(&e, t->text_pool + t->vtok_off[id], t->vtok_len[id]);
        if (oom_any(&e)) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            break;
        }
        if (e.ids.len == sizeof(int32_t) && VEC(&e.ids, int32_t)[0] == (int32_t)id)
            bits[id >> 3] |= (uint8_t)(1u << (id & 7));
    }
    enc_free(&e);
    if (st) {
        lg_free(t->a, bits);
        return st;
    }
    t->self_merging = bits;
    return LLMGPU_OK;
}

static void enc_init(struct enc *e, const struct lg_tokenizer *t) {
    memset(e, 0, sizeof *e);
    e->t = t;
    e->a = t->a;
    lg_tok_buf_init(&e->src, t->a);
    lg_tok_buf_init(&e->norm, t->a);
    lg_tok_buf_init(&e->ar, t->a);
    lg_tok_buf_init(&e->pa, t->a);
    lg_tok_buf_init(&e->pb, t->a);
    lg_tok_buf_init(&e->spans, t->a);
    lg_tok_buf_init(&e->seg1, t->a);
    lg_tok_buf_init(&e->seg2, t->a);
    lg_tok_buf_init(&e->ids, t->a);
    lg_tok_buf_init(&e->syms, t->a);
    lg_tok_buf_init(&e->heap, t->a);
}

static void enc_free(struct enc *e) {
    lg_tok_buf_free(&e->src);
    lg_tok_buf_free(&e->norm);
    lg_tok_buf_free(&e->ar);
    lg_tok_buf_free(&e->pa);
    lg_tok_buf_free(&e->pb);
    lg_tok_buf_free(&e->spans);
    lg_tok_buf_free(&e->seg1);
    lg_tok_buf_free(&e->seg2);
    lg_tok_buf_free(&e->ids);
    lg_tok_buf_free(&e->syms);
    lg_tok_buf_free(&e->heap);
    pcre2_match_data_free(e->md);
    pcre2_match_context_free(e->mc);
    pcre2_jit_stack_free(e->js);
}

enum llmgpu_status lg_tok_encode(const struct lg_tokenizer *t, const char *text, size_t len,
                                 uint32_t flags, int32_t *ids, size_t *n_inout) {
    struct enc e;
    const char *s = text;
    size_t i, n, total, cap;
    enum llmgpu_status st = LLMGPU_OK;
    if (!t || !n_inout || (!text && len))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (flags & ~(LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    cap = ids ? *n_inout : 0;
    enc_init(&e, t);
    /* invalid UTF-8 -> U+FFFD, only when needed */
    for (i = 0; i < len; i++) {
        uint32_t cp;
        size_t bad, k;
        if (!((unsigned char)text[i] & 0x80))
            continue;
        k = lg_tok_utf8_valid((const unsigned char *)text + i, len - i, &cp, &bad);
        if (!k)
            break;
        i += k - 1;
    }
    if (i < len) {
        lg_tok_utf8_sanitize(&e.src, text, len);
        s = e.src.p;
        len = e.src.len;
    }
    if (!e.src.oom && len)
        encode_text(&e, s, len, flags);
    if (!e.err && oom_any(&e))
        e.err = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    if (e.err) {
        st = (enum llmgpu_status)e.err;
        goto out;
    }
    n = VLEN(&e.ids, int32_t);
    total = n;
    if (flags & LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL)
        for (i = 0; i < t->n_tmpl; i++)
            if (t->tmpl[i] >= 0)
                total++;
    *n_inout = total;
    if (!ids || cap < total) {
        st = ids ? LLMGPU_ERR_BUFFER_TOO_SMALL : LLMGPU_OK;
        goto out;
    }
    if ((flags & LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL) && t->n_tmpl) {
        size_t w = 0;
        for (i = 0; i < t->n_tmpl; i++) {
            if (t->tmpl[i] >= 0) {
                ids[w++] = t->tmpl[i];
            } else if (n) {
                memcpy(ids + w, e.ids.p, n * sizeof *ids);
                w += n;
            }
        }
    } else if (n) {
        memcpy(ids, e.ids.p, n * sizeof *ids);
    }
out:
    enc_free(&e);
    return st;
}
