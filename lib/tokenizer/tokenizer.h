/*
 * tokenizer.h - internal API of the Hugging Face compatible tokenizer (lib/tokenizer/).
 *
 * Loads tokenizer.json (+ tokenizer_config.json, generation_config.json,
 * special_tokens_map.json, chat_template.jinja) and encodes / decodes exactly like
 * transformers' AutoTokenizer (backed by the Rust `tokenizers` crate; transformers 5 by
 * default, see LG_TOK_OPT_TRANSFORMERS_V4). Supported: BPE models (merges in "a b" or ["a","b"]
 * form, byte_fallback, ignore_merges, unk/fuse_unk), normalizers NFC/NFD/NFKC/NFKD, Lowercase,
 * Prepend, Replace, Strip, Sequence; pre-tokenizers Split, ByteLevel, Metaspace, Digits,
 * Sequence; added tokens with lstrip/rstrip/single_word/normalized/special; post-processors
 * TemplateProcessing, ByteLevel, Sequence; decoders ByteLevel, Metaspace, ByteFallback,
 * Fuse, Strip, Replace, Sequence. Anything else is LLMGPU_ERR_BAD_TOKENIZER with a log
 * line naming the component. Chat templates are lib/chat's: lg_tok_chat_template() and
 * lg_tok_chat_token() give it the template and the bos/eos strings.
 *
 * Thread safety: a loaded tokenizer is immutable; every function taking a const
 * struct lg_tokenizer * may be called from any number of threads at once.
 * A struct lg_tok_stream belongs to one thread at a time.
 */
#ifndef LG_TOKENIZER_H
#define LG_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct lg_tokenizer;

/* Load from memory. json: tokenizer.json bytes; cfg: tokenizer_config.json bytes or NULL;
 * gen_cfg: generation_config.json or NULL (eos ids). The buffers need not be
 * NUL-terminated and are not kept. a and log are copied: allocations of the load count down
 * a's fault-injection counter, later ones (encode, decode) never fail by injection.
 * On failure *out is NULL.
 * Returns LLMGPU_OK, LLMGPU_ERR_BAD_TOKENIZER, LLMGPU_ERR_OUT_OF_HOST_MEMORY,
 * LLMGPU_ERR_INVALID_ARGUMENT. */
enum llmgpu_status lg_tok_load(const struct lg_alloc *a, const struct lg_log *log, const char *json,
                               size_t json_len, const char *cfg, size_t cfg_len,
                               const char *gen_cfg, size_t gen_cfg_len, struct lg_tokenizer **out);
/* Load dir/tokenizer.json, and dir/tokenizer_config.json and dir/generation_config.json
 * when present. Also LLMGPU_ERR_IO when tokenizer.json cannot be read. */
enum llmgpu_status lg_tok_load_dir(const struct lg_alloc *a, const struct lg_log *log,
                                   const char *dir, struct lg_tokenizer **out);
/* Options of the _ex loaders (the plain loaders pass 0).
 * By default the tokenizer behaves as transformers 5 AutoTokenizer (verified against
 * 5.17.0 with tokenizers 0.23.2), which differs from the file as written in two ways:
 * LlamaTokenizer-class tokenizers get their pipeline rebuilt from tokenizer_config.json
 * (no normalizer, Metaspace with prepend_scheme "always" when legacy else "first",
 * split=False; decoder Replace/ByteFallback/Fuse/Strip; not done to a byte-level
 * tokenizer.json, which that would break), and clean_up_tokenization_spaces
 * is ignored for BPE models. The post-processor is rebuilt from add_bos_token/add_eos_token
 * only when tokenizer_config.json names one of them.
 * LG_TOK_OPT_TRANSFORMERS_V4: behave as transformers 4 and the `tokenizers` library (and
 * transformers.js): tokenizer.json as written, clean-up as configured, Llama classes
 * rebuild the template with add_bos_token defaulting to true. */
#define LG_TOK_OPT_TRANSFORMERS_V4 (1u << 0)
enum llmgpu_status lg_tok_load_ex(const struct lg_alloc *a, const struct lg_log *log,
                                  const char *json, size_t json_len, const char *cfg,
                                  size_t cfg_len, const char *gen_cfg, size_t gen_cfg_len,
                                  uint32_t opts, struct lg_tokenizer **out);
enum llmgpu_status lg_tok_load_dir_ex(const struct lg_alloc *a, const struct lg_log *log,
                                      const char *dir, uint32_t opts, struct lg_tokenizer **out);
void lg_tok_free(struct lg_tokenizer *t);

/* Encode len bytes of text (invalid UTF-8 is replaced by U+FFFD as Python's
 * bytes.decode(errors="replace") does). flags: LLMGPU_TOKENIZE_FLAG_*; ADD_SPECIAL|PARSE_SPECIAL
 * equals AutoTokenizer(text).input_ids, ADD_SPECIAL alone equals
 * tok(text, split_special_tokens=True). Two-call idiom: ids NULL asks for the count;
 * a short buffer gives LLMGPU_ERR_BUFFER_TOO_SMALL with the needed count in *n_inout. */
enum llmgpu_status lg_tok_encode(const struct lg_tokenizer *t, const char *text, size_t len,
                                 uint32_t flags, int32_t *ids, size_t *n_inout);
/* Decode like tok.decode(ids, skip_special_tokens=flags & LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL),
 * including clean_up_tokenization_spaces from tokenizer_config.json. No NUL is written.
 * An id outside the vocabulary is LLMGPU_ERR_INVALID_TOKEN. Two-call idiom on bytes. */
enum llmgpu_status lg_tok_decode(const struct lg_tokenizer *t, const int32_t *ids, size_t n,
                                 uint32_t flags, char *text, size_t *len_inout);
/* The bytes one token contributes in the middle of a text (decoders applied, no
 * first-token space strip; may be part of a UTF-8 character). Two-call idiom. */
enum llmgpu_status lg_tok_piece(const struct lg_tokenizer *t, int32_t id, char *buf,
                                size_t *len_inout);

uint32_t lg_tok_n_vocab(const struct lg_tokenizer *t); /* highest id + 1, added tokens included */
int32_t lg_tok_bos(const struct lg_tokenizer *t);      /* -1 if none */
int32_t
lg_tok_eos(const struct lg_tokenizer *t); /* generation_config first, else tokenizer's; -1 */
int lg_tok_is_eog(const struct lg_tokenizer *t, int32_t id);
int lg_tok_is_special(const struct lg_tokenizer *t, int32_t id);
int lg_tok_is_control(const struct lg_tokenizer *t, int32_t id); /* special or an added token */
int32_t lg_tok_find(const struct lg_tokenizer *t, const char *token_text); /* -1 if none */
/* The raw vocabulary string of a token (e.g. "Ġhello", "▁the", "<0x0A>"), NUL-terminated,
 * valid as long as t; NULL for an id outside the vocabulary or a hole in it. */
const char *lg_tok_text(const struct lg_tokenizer *t, int32_t id);
const char *lg_tok_chat_template(const struct lg_tokenizer *t); /* or NULL; valid as long as t */
/* tokenizer_config.json's bos_token (eos 0) or eos_token (eos 1) text as written, which is
 * what a chat template sees (not generation_config's ids); NULL if absent. */
const char *lg_tok_chat_token(const struct lg_tokenizer *t, int eos);
/* The eos ids of generation_config.json (else the tokenizer's eos); count returned. */
uint32_t lg_tok_eos_ids(const struct lg_tokenizer *t, int32_t *ids, uint32_t cap);

/* Streaming detokenizer: push ids one at a time and get the text they add. Emits only
 * complete UTF-8 characters (a token that ends inside a character is held until the
 * next one completes it; bytes that can never complete become U+FFFD), strips the
 * leading space of the first token as SentencePiece decoders do, and skips special
 * tokens when initialised with LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL. The concatenated
 * output equals lg_tok_decode() of the pushed ids (clean_up_tokenization_spaces aside)
 * once the last character is complete. Fixed size, never allocates. */
struct lg_tok_stream {
    uint32_t flags;
    uint32_t n_tokens;   /* tokens that produced output so far (after skipping) */
    uint32_t strip_left; /* leading-space chars still to strip (Strip decoder) */
    uint32_t stripping;  /* strip_left initialised */
    uint32_t n_pending;  /* bytes of an incomplete UTF-8 character */
    unsigned char pending[4];
};
void lg_tok_stream_init(struct lg_tok_stream *s); /* flags 0: like decode() */
void lg_tok_stream_init_flags(struct lg_tok_stream *s, uint32_t flags);
/* out: room for *len_inout bytes; the bytes produced are written back to *len_inout.
 * out NULL asks for the size (the stream is unchanged); a short buffer gives
 * LLMGPU_ERR_BUFFER_TOO_SMALL with the exact size needed, also leaving the stream
 * unchanged. The output of one push is at most 3 * (piece length + 3) bytes. */
enum llmgpu_status lg_tok_stream_push(const struct lg_tokenizer *t, struct lg_tok_stream *s,
                                      int32_t id, char *out, size_t *len_inout);
/* Flush: bytes of an unfinished character at the end become U+FFFD (at most 3 bytes). */
enum llmgpu_status lg_tok_stream_flush(const struct lg_tokenizer *t, struct lg_tok_stream *s,
                                       char *out, size_t *len_inout);

#endif /* LG_TOKENIZER_H */
