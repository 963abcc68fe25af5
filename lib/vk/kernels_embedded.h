/* kernels_embedded.h - the table of kernel sources generated from kernels/ at build time. */
#ifndef LG_KERNELS_EMBEDDED_H
#define LG_KERNELS_EMBEDDED_H
#include <stddef.h>

struct lg_embedded_file {
    const char *name; /* base name, e.g. "rms_norm.comp" */
    const char *data; /* NUL-terminated source */
    size_t len;
};

/* Terminated by an entry whose name is NULL. */
extern const struct lg_embedded_file lg_embedded_kernels[];

#endif
