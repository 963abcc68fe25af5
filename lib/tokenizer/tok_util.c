/*
 * tok_util.c - small helpers of the tokenizer: growable buffers, UTF-8 validation with
 * Python's errors="replace" semantics, string hashing. Owns no tokenizer state.
 */
#include <string.h>

#include "tokenizer/tok_internal.h"

void lg_tok_buf_init(struct lg_tok_buf *b, const struct lg_alloc *a) {
    memset(b, 0, sizeof *b);
    b->a = a;
}

void lg_tok_buf_free(struct lg_tok_buf *b) {
    lg_free(b->a, b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int lg_tok_buf_reserve(struct lg_tok_buf *b, size_t extra) {
    size_t need, cap;
    char *p;
    if (b->oom)
        return -1;
    if (lg_add_size(b->len, extra, &need) || lg_add_size(need, 1, &need)) {
        b->oom = 1;
        return -1;
    }
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = lg_realloc(b->a, b->p, b->cap, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void lg_tok_buf_put(struct lg_tok_buf *b, const void *p, size_t n) {
    if (n == 0 || lg_tok_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void lg_tok_buf_putc(struct lg_tok_buf *b, char c) {
    if (lg_tok_buf_reserve(b, 1))
        return;
    b->p[b->len++] = c;
}

void lg_tok_buf_put_cp(struct lg_tok_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    lg_tok_buf_put(b, u, n);
}

size_t lg_tok_utf8_len(unsigned char c) {
    if (c < 0x80)
        return 1;
    if (c >= 0xF0)
        return 4;
    if (c >= 0xE0)
        return 3;
    return 2;
}

/* Unicode 3.9 "maximal subpart" rule, which Python's decoder and WHATWG follow. */
size_t lg_tok_utf8_valid(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad) {
    unsigned char c = s[0];
    size_t need, i;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t v;
    *bad = 1;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return need + 1;
}

size_t lg_tok_utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad, k;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        if (!(k = lg_tok_utf8_valid(u + i, n - i, &cp, &bad)))
            break;
        i += k;
    }
    return i;
}

void lg_tok_utf8_sanitize(struct lg_tok_buf *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = lg_tok_utf8_valid_prefix(s + i, n - i), bad;
        uint32_t cp;
        lg_tok_buf_put(b, s + i, k);
        if ((i += k) == n)
            break;
        /* an invalid sequence of `bad` bytes at i: one U+FFFD for it */
        lg_tok_utf8_valid((const unsigned char *)s + i, n - i, &cp, &bad);
        lg_tok_buf_put(b, "\xEF\xBF\xBD", 3);
        i += bad;
    }
}

/* FNV-1a, 64 bit, finished with a multiply-xorshift so low bits mix well. */
uint64_t lg_tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}
