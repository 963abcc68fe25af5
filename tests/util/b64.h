/*
 * b64.h - base64 decoding for the tokenizer fixtures (their texts are stored as
 * base64 so that any bytes survive JSON). Header-only: the Check suites and the
 * standalone tests/tools/tok_parity.c share it.
 */
#ifndef LG_TEST_B64_H
#define LG_TEST_B64_H

#include <stddef.h>
#include <string.h>

/* Decode base64 text in (padding and characters outside the alphabet are skipped)
 * into out, which needs 3/4 of strlen(in) bytes; returns the bytes written. */
static inline size_t tu_b64dec(const char *in, unsigned char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    unsigned v = 0;
    int bits = 0;
    for (; *in; in++) {
        const char *p = strchr(tab, *in);
        if (*in == '=' || !p)
            continue;
        v = (v << 6) | (unsigned)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(v >> bits);
        }
    }
    return n;
}

#endif
