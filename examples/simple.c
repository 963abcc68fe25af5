/* simple.c - placeholder replaced when generation lands; prints the library version. */
#include <stdio.h>

#include "llmgpu.h"

int main(void) {
    printf("libllmgpu %s\n", llmgpu_version_string());
    return 0;
}
