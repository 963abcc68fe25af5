/*
 * tok_internal.h - private structures of lib/tokenizer/ (shared by tok_*.c only).
 *
 * The tokenizer is immutable after lg_tok_load(); all per-call state lives in a
 * struct lg_tok_buf scratch owned by the caller of each function.
 */
#ifndef LG_TOK_INTERNAL_H
#define LG_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

/* ---- growable byte buffer (tok_util.c) ---- */
struct lg_tok_buf {
    const struct lg_alloc *a;
    char *p;
    size_t len, cap;
    int oom; /* sticky: an append failed */
};
void lg_tok_buf_init(struct lg_tok_buf *b, const struct lg_alloc *a);
void lg_tok_buf_free(struct lg_tok_buf *b);
int lg_tok_buf_reserve(struct lg_tok_buf *b, size_t extra); /* 0 ok */
void lg_tok_buf_put(struct lg_tok_buf *b, const void *p, size_t n);
void lg_tok_buf_putc(struct lg_tok_buf *b, char c);
void lg_tok_buf_put_cp(struct lg_tok_buf *b, uint32_t cp); /* UTF-8 encode */

/* ---- UTF-8 (tok_util.c) ---- */
/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid there
 * (the "maximal subpart" rule: *bad gets how many bytes one U+FFFD replaces). */
size_t lg_tok_utf8_valid(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad);
/* Append s to b with invalid sequences replaced by U+FFFD (Python errors="replace"). */
void lg_tok_utf8_sanitize(struct lg_tok_buf *b, const char *s, size_t n);
/* Length of the longest valid UTF-8 prefix of s (n when all of it is valid). A regex
 * subject may be passed to pcre2_match with PCRE2_NO_UTF_CHECK only when this is n:
 * on invalid UTF-8 that flag makes PCRE2 read out of bounds. */
size_t lg_tok_utf8_valid_prefix(const char *s, size_t n);
size_t lg_tok_utf8_len(unsigned char c); /* length from a valid lead byte */

/* ---- hash of strings to ids (tok_util.c) ---- */
uint64_t lg_tok_hash(const void *p, size_t n);
/* murmur3's fmix64: every key bit reaches every hash bit (merge pairs differ in few bits) */
static inline uint64_t lg_tok_hash64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* ---- tokenizer ---- */
enum lg_norm_kind {
    LG_NORM_NFC,
    LG_NORM_NFD,
    LG_NORM_NFKC,
    LG_NORM_NFKD,
    LG_NORM_LOWERCASE,
    LG_NORM_PREPEND,
    LG_NORM_REPLACE,
    LG_NORM_STRIP,
};

struct lg_norm {
    enum lg_norm_kind kind;
    char *s1; /* Prepend: prefix; Replace: literal pattern (re NULL) */
    size_t s1_len;
    char *s2; /* Replace: content */
    size_t s2_len;
    pcre2_code *re;  /* Replace with a Regex pattern */
    int left, right; /* Strip */
};

enum lg_split_behavior {
    LG_SPLIT_REMOVED,
    LG_SPLIT_ISOLATED,
    LG_SPLIT_MERGED_WITH_PREVIOUS,
    LG_SPLIT_MERGED_WITH_NEXT,
    LG_SPLIT_CONTIGUOUS,
};

enum lg_pre_kind {
    LG_PRE_SPLIT, /* regex (re) or literal (s1) */
    LG_PRE_BYTELEVEL,
    LG_PRE_METASPACE,
    LG_PRE_DIGITS,
    LG_PRE_WSPLIT, /* WhitespaceSplit */
};

enum lg_prepend_scheme { LG_PREPEND_ALWAYS, LG_PREPEND_FIRST, LG_PREPEND_NEVER };

struct lg_pre {
    enum lg_pre_kind kind;
    pcre2_code *re;
    char *s1; /* Split literal; Metaspace replacement (UTF-8) */
    size_t s1_len;
    enum lg_split_behavior behavior;
    int invert;
    int add_prefix_space;           /* ByteLevel */
    int use_regex;                  /* ByteLevel */
    enum lg_prepend_scheme prepend; /* Metaspace */
    int split;                      /* Metaspace */
    int individual_digits;          /* Digits */
};

enum lg_dec_kind {
    LG_DEC_BYTELEVEL,
    LG_DEC_METASPACE,
    LG_DEC_BYTEFALLBACK,
    LG_DEC_FUSE,
    LG_DEC_STRIP,
    LG_DEC_REPLACE,
};

struct lg_dec {
    enum lg_dec_kind kind;
    char *s1; /* Replace pattern / Metaspace replacement / Strip content (UTF-8) */
    size_t s1_len;
    char *s2; /* Replace content */
    size_t s2_len;
    pcre2_code *re; /* Replace with a Regex pattern */
    enum lg_prepend_scheme prepend;
    uint32_t start, stop; /* Strip */
};

struct lg_added {
    char *content; /* as in tokenizer.json */
    size_t len;
    char *match; /* what is searched: content, or its normalized form */
    size_t match_len;
    int32_t id;
    unsigned special : 1, lstrip : 1, rstrip : 1, single_word : 1, normalized : 1;
};

/* One merge: (left id, right id) -> rank, result id. */
struct lg_merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    uint32_t rank;
    int32_t id;
};

#define LG_TOK_MAX_NORM 16
#define LG_TOK_MAX_PRE 16
#define LG_TOK_MAX_DEC 16
#define LG_TOK_MAX_TEMPLATE 16
#define LG_TOK_MAX_EOG 32

struct lg_tokenizer {
    struct lg_alloc alloc;    /* copy, fault injection off */
    const struct lg_alloc *a; /* &alloc */
    struct lg_log log;

    /* vocabulary: id -> string (NUL-terminated, in text_pool), string -> id */
    uint32_t n_vocab;   /* highest id + 1 */
    uint32_t *tok_off;  /* (n_vocab) offset into text_pool, UINT32_MAX: hole */
    uint32_t *tok_len;  /* (n_vocab) */
    uint32_t *vtok_off; /* (n_vocab) the model vocabulary's own string of each id */
    uint32_t *vtok_len; /* (n_vocab) */
    char *text_pool;
    size_t text_pool_len;
    int32_t *vmap;   /* open addressing: vocab ids, -1 empty */
    size_t vmap_cap; /* power of two */
    int32_t *amap;   /* added-token content -> added index, same scheme */
    size_t amap_cap;
    int32_t char_id[0x800]; /* vocab id of each code point < 0x800 as a 1-char token, or -1 */
    int32_t byte_id[256];   /* <0xNN> tokens, -1 when absent */
    int32_t sp_id;          /* the token U+2581 alone, or -1 */

    /* model: BPE */
    struct lg_merge_slot *merges;
    size_t merges_cap;   /* power of two */
    uint8_t *merge_side; /* (n_vocab) bit 0: left part of some merge, bit 1: right part */
    int byte_fallback, ignore_merges, fuse_unk;
    /* No vocabulary string has U+2581 right after another character: a text without
     * pre-tokenizer can then be cut before each run of U+2581 into independent words. */
    int sp_split;
    int32_t unk_id; /* -1: none */
    /* bit per id: BPE of the token's own string gives exactly that token (NULL until
     * computed at load, and with ignore_merges) */
    uint8_t *self_merging;

    /* added tokens, and a first-byte filter for matching them */
    struct lg_added *added;
    uint32_t n_added;
    uint8_t added_first_raw[256]; /* some non-normalized token starts with this byte */
    uint8_t added_first_norm[256];
    unsigned char *is_special; /* (n_vocab) 1: special added token, 2: plain added token */

    struct lg_norm norm[LG_TOK_MAX_NORM];
    uint32_t n_norm;
    struct lg_pre pre[LG_TOK_MAX_PRE];
    uint32_t n_pre;
    struct lg_dec dec[LG_TOK_MAX_DEC];
    uint32_t n_dec;

    /* post-processor template for a single sequence: ids, with -1 marking $A */
    int32_t tmpl[LG_TOK_MAX_TEMPLATE * 4];
    uint32_t n_tmpl;

    /* tokenizer_config / generation_config */
    int clean_up_spaces;
    int32_t bos_id, eos_id;
    int32_t eos_ids[LG_TOK_MAX_EOG];
    uint32_t n_eos_ids; /* generation_config eos ids (or eos_id) */
    int32_t eog[LG_TOK_MAX_EOG];
    uint32_t n_eog;
    char *chat_template;
    char *chat_bos, *chat_eos; /* tokenizer_config bos_token / eos_token text, or NULL */

    /* each token's bytes in the middle of a text (decoders applied, see lg_tok_piece) */
    char *piece_pool;
    uint32_t *piece_off;   /* (n_vocab) */
    uint32_t *piece_len;   /* (n_vocab) */
    int dec_first_differs; /* a Metaspace decoder treats the first token differently */
    uint32_t strip_start;  /* a Strip decoder's start count (stream-level) */
    uint32_t strip_cp;     /* and its content character */

    pcre2_general_context *gctx;
};

/* tok_encode.c */
int32_t lg_tok_vocab_get(const struct lg_tokenizer *t, const char *s, size_t n);
int32_t lg_tok_added_get(const struct lg_tokenizer *t, const char *s, size_t n);
/* Apply the normalizer chain to s (valid UTF-8), appending the result to out. 0 ok, -1 out of
 * memory or a match error, -2 a regex Replace met invalid UTF-8 (from tokenizer.json). */
int lg_tok_normalize(const struct lg_tokenizer *t, const char *s, size_t n, struct lg_tok_buf *out);
/* Fill t->self_merging (after the model and merges are loaded). */
enum llmgpu_status lg_tok_bpe_selfcheck(struct lg_tokenizer *t);

/* tok_decode.c */
enum llmgpu_status lg_tok_pieces_build(struct lg_tokenizer *t);
/* Code point classes of Rust's char::is_whitespace and regex \w (utf8proc categories). */
int lg_tok_is_ws(uint32_t cp);
int lg_tok_is_word(uint32_t cp);
/* the byte-level alphabet */
extern const uint16_t lg_tok_byte_to_cp[256];
int lg_tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the byte-level alphabet */

#endif /* LG_TOK_INTERNAL_H */
