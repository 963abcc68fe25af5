/*
 * chat.h - internal API of chat templates (lib/chat/): render a conversation with a Jinja
 * chat template as transformers' apply_chat_template(messages, tokenize=False) does.
 * Tests and the public llmgpu_chat_apply_template() both go through lg_chat_render().
 */
#ifndef LG_CHAT_H
#define LG_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Options of one render; NULL options mean the defaults (0 fields too). */
struct lg_chat_opts {
    uint64_t max_steps;  /* 0: 5M evaluation steps (about a second) */
    uint32_t max_depth;  /* 0: 256 (template nesting and macro recursion) */
    size_t max_bytes;    /* 0: 256 MiB (template AST, values and output together) */
    int64_t now;         /* strftime_now(): seconds since the epoch, formatted in UTC;
                          * 0: the clock, in local time (as Python's datetime.now()) */
};

/* Render tmpl (NUL-terminated) for msgs. bos / eos: the special tokens' text, or NULL when
 * the tokenizer has none (the template then sees them undefined). flags:
 * LLMGPU_CHAT_FLAG_*. Two-call idiom on text (no NUL written). Errors are logged with
 * the template line. Returns LLMGPU_OK, LLMGPU_ERR_BUFFER_TOO_SMALL, LLMGPU_ERR_UNSUPPORTED
 * (syntax error, a construct the renderer lacks, a limit reached),
 * LLMGPU_ERR_INVALID_ARGUMENT (bad arguments; raise_exception() or another error the
 * template raises while rendering), LLMGPU_ERR_OUT_OF_HOST_MEMORY. */
enum llmgpu_status lg_chat_render(const struct lg_alloc *a, const struct lg_log *log,
                                  const char *tmpl, const char *bos, const char *eos,
                                  const struct llmgpu_chat_message *msgs, size_t n_msgs,
                                  uint32_t flags, const struct lg_chat_opts *opts, char *text,
                                  size_t *len_inout);

#endif /* LG_CHAT_H */
