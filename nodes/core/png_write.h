/* PNG encoding for SaveImage and PreviewImage: 8-bit gray, gray+alpha, RGB or RGBA with
 * text chunks placed right after IHDR, the way PIL writes ComfyUI's files.
 *
 * The container is written here around zlib instead of through stb_image_write: stb keeps
 * its compression level in a process-wide global (nodes run on several threads at once,
 * SaveImage at level 4 next to PreviewImage at level 1), has no text chunks (they would be
 * spliced in after the fact), and builds the whole filtered image before compressing.
 * Writing the chunks directly costs ~100 lines and lets the encoder use PIL's exact
 * choices (adaptive per-row filter, deflate strategy, IDAT chunk size), so files come out
 * byte-identical to ComfyUI's when the zlib versions agree.
 *
 * Plain functions with no host calls (libc allocation), usable from unit tests. */
#ifndef KILN_NODES_CORE_PNG_WRITE_H
#define KILN_NODES_CORE_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* One text chunk: ASCII/Latin-1 text becomes tEXt, text with bytes >= 0x80 (UTF-8)
 * becomes an uncompressed iTXt. */
typedef struct kiln__core_png_text {
    const char *key;        /* borrowed: 1..79 bytes, printable Latin-1, no NUL */
    const char *text;       /* borrowed: NUL-terminated */
} kiln__core_png_text_t;

/* Encodes pixels (row-major [height][width][channels] bytes; channels 1 = gray,
 * 2 = gray+alpha, 3 = RGB, 4 = RGBA) as a PNG with the given text chunks, in order, after
 * IHDR, compressed at zlib level 0..9. On success *out is a malloc'd buffer of *out_len
 * bytes that the caller frees with free(). Returns 0, KILN_EINVAL (bad size, channels,
 * level or key), KILN_ENOMEM, or KILN_EIO when zlib fails. Any thread. */
int kiln__core_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                          const kiln__core_png_text_t *texts, size_t n_texts, int level,
                          uint8_t **out, size_t *out_len);

/* Converts n float samples to bytes as numpy's np.clip(255. * x, 0, 255).astype(uint8)
 * does: scale in float32, clamp, truncate toward zero; NaN becomes 0. */
void kiln__core_float_to_u8(const float *src, size_t n, uint8_t *dst);

#endif
