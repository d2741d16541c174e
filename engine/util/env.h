/* The engine's environment as nodes and validation see it: directories and switches
 * set once at engine start. */
#ifndef KILN_UTIL_ENV_H
#define KILN_UTIL_ENV_H

#include <stdbool.h>

typedef struct kiln__env {
    char *base_dir;     /* owned; holds models/, input/, output/, temp/ by default */
    char *output_dir;   /* owned; absolute or relative to the working directory */
    char *input_dir;    /* owned */
    char *temp_dir;     /* owned */
    char *models_dir;   /* owned; one folder per model kind: checkpoints/, vae/, loras/, ... */
    bool disable_metadata; /* --disable-metadata: no PNG text chunks */
} kiln__env_t;

#endif
