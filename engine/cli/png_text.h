/* Reads the tEXt chunks of a PNG file (SaveImage stores the prompt and workflow there). */
#ifndef KILN_CLI_PNG_TEXT_H
#define KILN_CLI_PNG_TEXT_H

#include <stddef.h>

/* Finds the tEXt (or uncompressed iTXt) chunk with this keyword in a PNG held in memory.
 * Returns a malloc'd NUL-terminated copy of its text, or NULL when the buffer is not a
 * PNG, is truncated, or has no such chunk. */
char *kiln_cli_png_text(const unsigned char *png, size_t len, const char *keyword);

#endif
