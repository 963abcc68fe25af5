/*
 * tok_decode.c - ids to text: the decoder chain of tokenizer.json applied to a list of
 * token strings exactly as the Rust `tokenizers` decoders do (decode_chain of ByteLevel,
 * Metaspace, ByteFallback, Fuse, Strip, Replace), transformers' clean_up_tokenization,
 * per-token pieces (precomputed at load) and the streaming detokenizer.
 */
#include <string.h>

#include "tokenizer/tok_internal.h"

/* GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100.. */
const uint16_t lg_tok_byte_to_cp[256] = {
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10A, 0x10B, 0x10C,
    0x10D, 0x10E, 0x10F, 0x110, 0x111, 0x112, 0x113, 0x114, 0x115, 0x116, 0x117, 0x118, 0x119,
    0x11A, 0x11B, 0x11C, 0x11D, 0x11E, 0x11F, 0x120, 0x21,  0x22,  0x23,  0x24,  0x25,  0x26,
    0x27,  0x28,  0x29,  0x2A,  0x2B,  0x2C,  0x2D,  0x2E,  0x2F,  0x30,  0x31,  0x32,  0x33,
    0x34,  0x35,  0x36,  0x37,  0x38,  0x39,  0x3A,  0x3B,  0x3C,  0x3D,  0x3E,  0x3F,  0x40,
    0x41,  0x42,  0x43,  0x44,  0x45,  0x46,  0x47,  0x48,  0x49,  0x4A,  0x4B,  0x4C,  0x4D,
    0x4E,  0x4F,  0x50,  0x51,  0x52,  0x53,  0x54,  0x55,  0x56,  0x57,  0x58,  0x59,  0x5A,
    0x5B,  0x5C,  0x5D,  0x5E,  0x5F,  0x60,  0x61,  0x62,  0x63,  0x64,  0x65,  0x66,  0x67,
    0x68,  0x69,  0x6A,  0x6B,  0x6C,  0x6D,  0x6E,  0x6F,  0x70,  0x71,  0x72,  0x73,  0x74,
    0x75,  0x76,  0x77,  0x78,  0x79,  0x7A,  0x7B,  0x7C,  0x7D,  0x7E,  0x121, 0x122, 0x123,
    0x124, 0x125, 0x126, 0x127, 0x128, 0x129, 0x12A, 0x12B, 0x12C, 0x12D, 0x12E, 0x12F, 0x130,
    0x131, 0x132, 0x133, 0x134, 0x135, 0x136, 0x137, 0x138, 0x139, 0x13A, 0x13B, 0x13C, 0x13D,
    0x13E, 0x13F, 0x140, 0x141, 0x142, 0xA1,  0xA2,  0xA3,  0xA4,  0xA5,  0xA6,  0xA7,  0xA8,
    0xA9,  0xAA,  0xAB,  0xAC,  0x143, 0xAE,  0xAF,  0xB0,  0xB1,  0xB2,  0xB3,  0xB4,  0xB5,
    0xB6,  0xB7,  0xB8,  0xB9,  0xBA,  0xBB,  0xBC,  0xBD,  0xBE,  0xBF,  0xC0,  0xC1,  0xC2,
    0xC3,  0xC4,  0xC5,  0xC6,  0xC7,  0xC8,  0xC9,  0xCA,  0xCB,  0xCC,  0xCD,  0xCE,  0xCF,
    0xD0,  0xD1,  0xD2,  0xD3,  0xD4,  0xD5,  0xD6,  0xD7,  0xD8,  0xD9,  0xDA,  0xDB,  0xDC,
    0xDD,  0xDE,  0xDF,  0xE0,  0xE1,  0xE2,  0xE3,  0xE4,  0xE5,  0xE6,  0xE7,  0xE8,  0xE9,
    0xEA,  0xEB,  0xEC,  0xED,  0xEE,  0xEF,  0xF0,  0xF1,  0xF2,  0xF3,  0xF4,  0xF5,  0xF6,
    0xF7,  0xF8,  0xF9,  0xFA,  0xFB,  0xFC,  0xFD,  0xFE,  0xFF,
};

int lg_tok_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x143) {
        /* the bytes that bytes_to_unicode() moved to U+0100.. */
        static const uint8_t inv[0x44] = {
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
            0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B,
            0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
            0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
            0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xAD,
        };
        return inv[cp - 0x100];
    }
    return -1;
}

/* A list of token strings as spans of an arena. */
struct tlist {
    struct lg_tok_buf ar;
    struct lg_tok_buf sp; /* struct tspan */
};
struct tspan {
    size_t off, len;
};

static void tl_init(struct tlist *l, const struct lg_alloc *a) {
    lg_tok_buf_init(&l->ar, a);
    lg_tok_buf_init(&l->sp, a);
}
static void tl_free(struct tlist *l) {
    lg_tok_buf_free(&l->ar);
    lg_tok_buf_free(&l->sp);
}
static size_t tl_n(const struct tlist *l) {
    return l->sp.len / sizeof(struct tspan);
}
static struct tspan tl_get(const struct tlist *l, size_t i) {
    return ((const struct tspan *)(const void *)l->sp.p)[i];
}
static void tl_push(struct tlist *l, const char *s, size_t n) {
    struct tspan x;
    (void)lg_tok_buf_reserve(&l->ar, n); /* never a NULL arena, even for empty tokens */
    x.off = l->ar.len;
    x.len = n;
    lg_tok_buf_put(&l->ar, s, n);
    lg_tok_buf_put(&l->sp, &x, sizeof x);
}
/* Start a new token in l->ar; finish with tl_end. */
static size_t tl_begin(struct tlist *l) {
    (void)lg_tok_buf_reserve(&l->ar, 16);
    return l->ar.len;
}
static void tl_end(struct tlist *l, size_t off) {
    struct tspan x;
    x.off = off;
    x.len = l->ar.len - off;
    lg_tok_buf_put(&l->sp, &x, sizeof x);
}

static uint32_t cp_of(const char *s, size_t n, size_t *len) {
    uint32_t cp;
    size_t bad;
    *len = lg_tok_utf8_valid((const unsigned char *)s, n, &cp, &bad);
    if (!*len) {
        *len = 1;
        return 0xFFFD;
    }
    return cp;
}

/* Replace every match of re in p (n bytes of valid UTF-8) by rep, appending to out. */
static void re_replace_valid(pcre2_match_data *md, pcre2_code *re, const char *p, size_t n,
                             const char *rep, size_t rn, struct lg_tok_buf *out) {
    size_t pos = 0, run = 0;
    while (pos <= n) {
        PCRE2_SIZE *ov;
        if (pcre2_match(re, (PCRE2_SPTR)p, n, pos, PCRE2_NO_UTF_CHECK, md, NULL) < 0)
            break;
        ov = pcre2_get_ovector_pointer(md);
        lg_tok_buf_put(out, p + run, ov[0] - run);
        lg_tok_buf_put(out, rep, rn);
        run = ov[1];
        pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
        if (ov[1] == ov[0] && ov[1] < n) {
            size_t l;
            (void)cp_of(p + ov[1], n - ov[1], &l);
            lg_tok_buf_put(out, p + ov[1], l);
            run = pos = ov[1] + l;
        }
    }
    if (run < n)
        lg_tok_buf_put(out, p + run, n - run);
}

static int parse_byte_token(const char *s, size_t n) {
    int v = 0, i;
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return -1;
    for (i = 3; i < 5; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* Decoder chain. mode 0: decode(); mode 1: piece of a middle token (no first-token rules,
 * no strip, raw bytes kept); mode 2: piece of the first token (Metaspace first rule). */
static int run_chain(const struct lg_tokenizer *t, struct tlist *in, int mode) {
    uint32_t k;
    struct tlist out;
    if (in->ar.oom || in->sp.oom)
        return -1;
    tl_init(&out, t->a);
    for (k = 0; k < t->n_dec; k++) {
        const struct lg_dec *x = &t->dec[k];
        size_t i, n = tl_n(in);
        out.ar.len = out.sp.len = 0;
        switch (x->kind) {
        case LG_DEC_REPLACE:
            for (i = 0; i < n; i++) {
                struct tspan s = tl_get(in, i);
                const char *p = in->ar.p + s.off;
                size_t off = tl_begin(&out), j = 0, run = 0;
                if (x->re) {
                    /* A piece can hold raw bytes (ByteLevel, ByteFallback, a middle token of a
                     * stream), and PCRE2_NO_UTF_CHECK on invalid UTF-8 reads out of bounds:
                     * replace within each valid run and copy invalid bytes through. */
                    pcre2_match_data *md = pcre2_match_data_create(4, t->gctx);
                    size_t a = 0;
                    do {
                        size_t v = a + lg_tok_utf8_valid_prefix(p + a, s.len - a), bad;
                        uint32_t cp;
                        if (md && (v > a || s.len == 0))
                            re_replace_valid(md, x->re, p + a, v - a, x->s2, x->s2_len, &out.ar);
                        if (v >= s.len)
                            break;
                        (void)lg_tok_utf8_valid((const unsigned char *)p + v, s.len - v, &cp,
                                                &bad);
                        lg_tok_buf_put(&out.ar, p + v, bad);
                        a = v + bad;
                    } while (a < s.len);
                    run = s.len;
                    pcre2_match_data_free(md);
                    if (!md)
                        out.ar.oom = 1;
                } else {
                    while (x->s1_len && j + x->s1_len <= s.len) {
                        if (!memcmp(p + j, x->s1, x->s1_len)) {
                            lg_tok_buf_put(&out.ar, p + run, j - run);
                            lg_tok_buf_put(&out.ar, x->s2, x->s2_len);
                            j += x->s1_len;
                            run = j;
                        } else {
                            j++;
                        }
                    }
                }
                if (run < s.len)
                    lg_tok_buf_put(&out.ar, p + run, s.len - run);
                tl_end(&out, off);
            }
            break;
        case LG_DEC_BYTEFALLBACK: {
            size_t start = 0, nb = 0;
            for (i = 0; i <= n; i++) {
                struct tspan s;
                int b = -1;
                if (i < n) {
                    s = tl_get(in, i);
                    b = parse_byte_token(in->ar.p + s.off, s.len);
                }
                if (b >= 0) {
                    if (nb == 0)
                        start = i;
                    nb++;
                    continue;
                }
                if (nb) { /* flush the run of byte tokens start..start+nb */
                    size_t off = tl_begin(&out), j, pos = 0, bad;
                    uint32_t cp;
                    int ok = 1;
                    for (j = 0; j < nb; j++) {
                        struct tspan q = tl_get(in, start + j);
                        lg_tok_buf_putc(&out.ar, (char)parse_byte_token(in->ar.p + q.off, q.len));
                    }
                    if (mode == 0 && !out.ar.oom) {
                        while (pos < nb) {
                            size_t l = lg_tok_utf8_valid((unsigned char *)out.ar.p + off + pos,
                                                         nb - pos, &cp, &bad);
                            if (!l) {
                                ok = 0;
                                break;
                            }
                            pos += l;
                        }
                    }
                    if (ok) {
                        tl_end(&out, off);
                    } else {
                        out.ar.len = off;
                        for (j = 0; j < nb; j++)
                            tl_push(&out, "\xEF\xBF\xBD", 3);
                    }
                    nb = 0;
                }
                if (i < n)
                    tl_push(&out, in->ar.p + s.off, s.len);
            }
            break;
        }
        case LG_DEC_FUSE: {
            size_t off = tl_begin(&out);
            for (i = 0; i < n; i++) {
                struct tspan s = tl_get(in, i);
                lg_tok_buf_put(&out.ar, in->ar.p + s.off, s.len);
            }
            tl_end(&out, off);
            break;
        }
        case LG_DEC_STRIP:
            for (i = 0; i < n; i++) {
                struct tspan s = tl_get(in, i);
                const char *p = in->ar.p + s.off;
                size_t b = 0, e = s.len, l;
                uint32_t c = 0, m;
                size_t cl;
                if (mode != 0) {
                    tl_push(&out, p, s.len);
                    continue;
                }
                c = cp_of(x->s1, x->s1_len, &cl);
                for (m = 0; m < x->start && b < e; m++) {
                    if (cp_of(p + b, e - b, &l) != c)
                        break;
                    b += l;
                }
                for (m = 0; m < x->stop && e > b; m++) {
                    size_t q = e;
                    while (q > b && ((unsigned char)p[q - 1] & 0xC0) == 0x80)
                        q--;
                    q = q > b ? q - 1 : b;
                    if (cp_of(p + q, e - q, &l) != c)
                        break;
                    e = q;
                }
                tl_push(&out, p + b, e - b);
            }
            break;
        case LG_DEC_METASPACE:
            for (i = 0; i < n; i++) {
                struct tspan s = tl_get(in, i);
                const char *p = in->ar.p + s.off;
                size_t off = tl_begin(&out), j = 0;
                int first = (mode == 0 && i == 0) || mode == 2;
                while (j < s.len) {
                    if (s.len - j >= x->s1_len && !memcmp(p + j, x->s1, x->s1_len)) {
                        if (!(first && x->prepend != LG_PREPEND_NEVER))
                            lg_tok_buf_putc(&out.ar, ' ');
                        j += x->s1_len;
                    } else {
                        lg_tok_buf_putc(&out.ar, p[j]);
                        j++;
                    }
                }
                tl_end(&out, off);
            }
            break;
        case LG_DEC_BYTELEVEL: {
            size_t off = tl_begin(&out), bytes_off;
            for (i = 0; i < n; i++) {
                struct tspan s = tl_get(in, i);
                const char *p = in->ar.p + s.off;
                size_t j = 0, l, start = out.ar.len;
                int ok = 1;
                while (j < s.len) {
                    int b = lg_tok_cp_to_byte(cp_of(p + j, s.len - j, &l));
                    if (b < 0) {
                        ok = 0;
                        break;
                    }
                    lg_tok_buf_putc(&out.ar, (char)b);
                    j += l;
                }
                if (!ok) { /* a char outside the alphabet: the token's own bytes */
                    out.ar.len = start;
                    lg_tok_buf_put(&out.ar, p, s.len);
                }
            }
            if (mode == 0 && !out.ar.oom) { /* String::from_utf8_lossy */
                struct lg_tok_buf tmp;
                lg_tok_buf_init(&tmp, t->a);
                bytes_off = off;
                lg_tok_utf8_sanitize(&tmp, out.ar.p + bytes_off, out.ar.len - bytes_off);
                out.ar.len = off;
                lg_tok_buf_put(&out.ar, tmp.p, tmp.len);
                if (tmp.oom)
                    out.ar.oom = 1;
                lg_tok_buf_free(&tmp);
            }
            tl_end(&out, off);
            break;
        }
        }
        if (out.ar.oom || out.sp.oom)
            break;
        {
            struct tlist sw = *in;
            *in = out;
            out = sw;
        }
    }
    k = out.ar.oom || out.sp.oom || in->ar.oom || in->sp.oom;
    tl_free(&out);
    return k ? -1 : 0;
}

/* transformers' PreTrainedTokenizerBase.clean_up_tokenization, in its order. */
static void clean_up(struct lg_tok_buf *b) {
    static const char *const pat[][2] = {
        {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    size_t k;
    for (k = 0; k < LG_ARRAY_LEN(pat); k++) {
        size_t pl = strlen(pat[k][0]), rl = strlen(pat[k][1]), i = 0, w = 0;
        if (!b->len)
            return;
        /* the replacement is shorter than the pattern, so it works in place */
        while (i < b->len) {
            if (i + pl <= b->len && !memcmp(b->p + i, pat[k][0], pl)) {
                memcpy(b->p + w, pat[k][1], rl);
                w += rl;
                i += pl;
            } else {
                b->p[w++] = b->p[i++];
            }
        }
        b->len = w;
    }
}

static enum llmgpu_status copy_out(const struct lg_tok_buf *b, char *text, size_t *len_inout) {
    size_t cap = text ? *len_inout : 0;
    *len_inout = b->len;
    if (!text)
        return LLMGPU_OK;
    if (cap < b->len)
        return LLMGPU_ERR_BUFFER_TOO_SMALL;
    if (b->len)
        memcpy(text, b->p, b->len);
    return LLMGPU_OK;
}

enum llmgpu_status lg_tok_decode(const struct lg_tokenizer *t, const int32_t *ids, size_t n,
                                 uint32_t flags, char *text, size_t *len_inout) {
    struct tlist l;
    struct lg_tok_buf res;
    enum llmgpu_status st = LLMGPU_OK;
    size_t i;
    int skip = (flags & LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL) != 0;
    if (!t || !len_inout || (!ids && n))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (flags & ~LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab)
            return LLMGPU_ERR_INVALID_TOKEN;
    tl_init(&l, t->a);
    lg_tok_buf_init(&res, t->a);
    for (i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (t->tok_off[id] == UINT32_MAX)
            continue; /* a hole in the vocabulary: Rust's id_to_token gives None */
        if (skip && t->is_special[id] == 1)
            continue;
        tl_push(&l, t->text_pool + t->tok_off[id], t->tok_len[id]);
    }
    if (t->n_dec == 0) {
        size_t m = tl_n(&l);
        for (i = 0; i < m; i++) {
            struct tspan s = tl_get(&l, i);
            if (i)
                lg_tok_buf_putc(&res, ' ');
            lg_tok_buf_put(&res, l.ar.p + s.off, s.len);
        }
    } else {
        size_t m;
        if (l.ar.oom || l.sp.oom || run_chain(t, &l, 0)) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto out;
        }
        m = tl_n(&l);
        for (i = 0; i < m; i++) {
            struct tspan s = tl_get(&l, i);
            lg_tok_buf_put(&res, l.ar.p + s.off, s.len);
        }
    }
    if (res.oom || l.ar.oom || l.sp.oom) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto out;
    }
    if (t->clean_up_spaces)
        clean_up(&res);
    st = copy_out(&res, text, len_inout);
out:
    tl_free(&l);
    lg_tok_buf_free(&res);
    return st;
}

/* The piece of one token in mode 1 or 2 of run_chain, appended to out. */
static int piece_of(const struct lg_tokenizer *t, int32_t id, int mode, struct lg_tok_buf *out) {
    struct tlist l;
    size_t i, m;
    int rc;
    tl_init(&l, t->a);
    tl_push(&l, t->text_pool + t->tok_off[id], t->tok_len[id]);
    rc = run_chain(t, &l, mode);
    m = tl_n(&l);
    for (i = 0; !rc && i < m; i++) {
        struct tspan s = tl_get(&l, i);
        lg_tok_buf_put(out, l.ar.p + s.off, s.len);
    }
    if (l.ar.oom || l.sp.oom || out->oom)
        rc = -1;
    tl_free(&l);
    return rc;
}

enum llmgpu_status lg_tok_pieces_build(struct lg_tokenizer *t) {
    struct lg_tok_buf pool;
    uint32_t i, k;
    t->piece_off = lg_malloc(t->a, t->n_vocab * sizeof *t->piece_off);
    t->piece_len = lg_calloc(t->a, t->n_vocab, sizeof *t->piece_len);
    if (!t->piece_off || !t->piece_len)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (k = 0; k < t->n_dec; k++) {
        if (t->dec[k].kind == LG_DEC_METASPACE && t->dec[k].prepend != LG_PREPEND_NEVER)
            t->dec_first_differs = 1;
        if (t->dec[k].kind == LG_DEC_STRIP && t->dec[k].start > 0 && !t->strip_start) {
            size_t l;
            t->strip_start = t->dec[k].start;
            t->strip_cp = cp_of(t->dec[k].s1, t->dec[k].s1_len, &l);
        }
    }
    lg_tok_buf_init(&pool, t->a);
    for (i = 0; i < t->n_vocab; i++) {
        t->piece_off[i] = (uint32_t)pool.len;
        if (t->tok_off[i] == UINT32_MAX)
            continue;
        if (t->n_dec == 0)
            lg_tok_buf_put(&pool, t->text_pool + t->tok_off[i], t->tok_len[i]);
        else if (piece_of(t, (int32_t)i, 1, &pool))
            break;
        if (pool.len > UINT32_MAX / 2)
            pool.oom = 1;
        if (pool.oom)
            break;
        t->piece_len[i] = (uint32_t)(pool.len - t->piece_off[i]);
    }
    if (pool.oom || i < t->n_vocab) {
        lg_tok_buf_free(&pool);
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    t->piece_pool = pool.p; /* may be NULL when every piece is empty */
    return LLMGPU_OK;
}

enum llmgpu_status lg_tok_piece(const struct lg_tokenizer *t, int32_t id, char *buf,
                                size_t *len_inout) {
    size_t cap, n;
    if (!t || !len_inout)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return LLMGPU_ERR_INVALID_TOKEN;
    cap = buf ? *len_inout : 0;
    n = t->piece_len[id];
    *len_inout = n;
    if (!buf)
        return LLMGPU_OK;
    if (cap < n)
        return LLMGPU_ERR_BUFFER_TOO_SMALL;
    if (n)
        memcpy(buf, t->piece_pool + t->piece_off[id], n);
    return LLMGPU_OK;
}

/* ---- streaming ---- */
void lg_tok_stream_init_flags(struct lg_tok_stream *s, uint32_t flags) {
    memset(s, 0, sizeof *s);
    s->flags = flags;
}

void lg_tok_stream_init(struct lg_tok_stream *s) {
    lg_tok_stream_init_flags(s, 0);
}

/* The bytes of a stream step: the held bytes of an unfinished character, then a piece. */
struct vsrc {
    const unsigned char *a, *b;
    size_t na, nb;
};

/* Copy up to 4 bytes of v from i into u; returns how many. */
static size_t vpeek(const struct vsrc *v, size_t i, unsigned char u[4]) {
    size_t k = 0;
    for (; k < 4 && i + k < v->na + v->nb; k++)
        u[k] = i + k < v->na ? v->a[i + k] : v->b[i + k - v->na];
    return k;
}

/* Emit the bytes of v as complete UTF-8 to out (NULL: only count), holding an unfinished
 * character in s->pending and applying the stream-level Strip. Returns the bytes out. */
static size_t stream_emit(const struct lg_tokenizer *t, struct lg_tok_stream *s,
                          const struct vsrc *v, int final, char *out) {
    size_t i = 0, w = 0, n = v->na + v->nb;
    while (i < n) {
        unsigned char u[4];
        uint32_t cp;
        size_t have = vpeek(v, i, u), bad, l = lg_tok_utf8_valid(u, have, &cp, &bad);
        if (!l && !final && i + bad == n && bad < lg_tok_utf8_len(u[0]) && u[0] >= 0xC2 &&
            u[0] <= 0xF4) {
            /* a valid start that the next token may complete */
            memcpy(s->pending, u, bad);
            s->n_pending = (uint32_t)bad;
            return w;
        }
        if (!l) {
            cp = 0xFFFD;
            l = bad;
        }
        if (s->strip_left && cp == t->strip_cp) {
            s->strip_left--;
        } else {
            s->strip_left = 0;
            if (cp == 0xFFFD && (l != 3 || memcmp(u, "\xEF\xBF\xBD", 3))) {
                if (out)
                    memcpy(out + w, "\xEF\xBF\xBD", 3);
                w += 3;
            } else {
                if (out)
                    memcpy(out + w, u, l);
                w += l;
            }
        }
        i += l;
    }
    s->n_pending = 0;
    return w;
}

/* One step: count first on a copy of the state, then write when out has room. */
static enum llmgpu_status stream_step(const struct lg_tokenizer *t, struct lg_tok_stream *s,
                                      const unsigned char *piece, size_t n, int final, char *out,
                                      size_t *len_inout) {
    unsigned char pend[4];
    struct vsrc v;
    struct lg_tok_stream dry = *s;
    size_t need, cap = out ? *len_inout : 0;
    memcpy(pend, s->pending, s->n_pending);
    v.a = pend;
    v.na = s->n_pending;
    v.b = piece;
    v.nb = n;
    need = stream_emit(t, &dry, &v, final, NULL);
    *len_inout = need;
    if (!out || cap < need)
        return out ? LLMGPU_ERR_BUFFER_TOO_SMALL : LLMGPU_OK;
    (void)stream_emit(t, s, &v, final, out);
    return LLMGPU_OK;
}

enum llmgpu_status lg_tok_stream_push(const struct lg_tokenizer *t, struct lg_tok_stream *s,
                                      int32_t id, char *out, size_t *len_inout) {
    struct lg_tok_buf tmp;
    const unsigned char *p;
    size_t n;
    enum llmgpu_status st;
    int first;
    struct lg_tok_stream saved;
    if (!t || !s || !len_inout)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return LLMGPU_ERR_INVALID_TOKEN;
    if (t->tok_off[id] == UINT32_MAX ||
        ((s->flags & LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL) && t->is_special[id] == 1)) {
        *len_inout = 0;
        return LLMGPU_OK;
    }
    first = s->n_tokens == 0;
    lg_tok_buf_init(&tmp, t->a);
    if (first && t->dec_first_differs) {
        if (piece_of(t, id, 2, &tmp)) {
            lg_tok_buf_free(&tmp);
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        }
        p = (const unsigned char *)tmp.p;
        n = tmp.len;
    } else {
        p = (const unsigned char *)t->piece_pool + t->piece_off[id];
        n = t->piece_len[id];
    }
    saved = *s;
    if (first && !s->stripping) {
        s->strip_left = t->strip_start;
        s->stripping = 1;
    }
    st = stream_step(t, s, n ? p : (const unsigned char *)"", n, 0, out, len_inout);
    if (st == LLMGPU_OK && out)
        s->n_tokens++;
    else
        *s = saved; /* a size query or a short buffer changes nothing */
    lg_tok_buf_free(&tmp);
    return st;
}

enum llmgpu_status lg_tok_stream_flush(const struct lg_tokenizer *t, struct lg_tok_stream *s,
                                       char *out, size_t *len_inout) {
    if (!t || !s || !len_inout)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    return stream_step(t, s, (const unsigned char *)"", 0, 1, out, len_inout);
}
