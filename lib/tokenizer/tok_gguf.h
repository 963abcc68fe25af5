/*
 * tok_gguf.h - build an lg_tokenizer from a GGUF file's metadata (tok_gguf.c).
 */
#ifndef LG_TOK_GGUF_H
#define LG_TOK_GGUF_H

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

/*
 * The tokenizer of GGUF file g:
 *  - tokenizer.huggingface.json when present (our writer stores the model's
 *    tokenizer.json there, with tokenizer_config.json as
 *    llmgpu.tokenizer_config): loaded exactly as from the model directory;
 *  - else tokenizer.ggml.model "llama" (SentencePiece-style: tokens, scores,
 *    token_type with byte tokens <0xNN>; merges derived from the scores as
 *    transformers' SentencePieceExtractor does: every split of a piece into two
 *    pieces, ordered by the piece's score, then by ids; Prepend/Replace
 *    normalizer when tokenizer.ggml.add_space_prefix (default true); byte
 *    fallback) or "gpt2" (byte-level BPE: tokens and merges, pre-tokenizer by
 *    tokenizer.ggml.pre: "llama-bpe"/"llama3"/"llama-v3" (Llama 3, ignore_merges),
 *    "qwen2" (with NFC), "gpt2"/"default" (ByteLevel's own regex); others
 *    are LLMGPU_ERR_BAD_TOKENIZER naming the value).
 * Token types 3 (control) become special added tokens, 4 (user defined)
 * non-special added tokens. bos/eos/unknown ids, add_bos_token and
 * add_eos_token, tokenizer.chat_template are honoured (lg_tok_chat_template).
 * opts: LG_TOK_OPT_*, as lg_tok_load_ex. g must be valid for the call only.
 * Returns LLMGPU_OK, LLMGPU_ERR_BAD_TOKENIZER (message names the key),
 * LLMGPU_ERR_OUT_OF_HOST_MEMORY.
 */
/* opts bit: ignore tokenizer.huggingface.json, build from tokenizer.ggml.* (tests). */
#define LG_TOK_GGUF_IGNORE_HF (1u << 30)
enum llmgpu_status lg_tok_load_gguf(const struct lg_alloc *a, const struct lg_log *log,
                                    const struct lg_gguf *g, uint32_t opts,
                                    struct lg_tokenizer **out);

#endif /* LG_TOK_GGUF_H */
