/* Image file decoding for LoadImage: stb_image for the formats (PNG 8/16-bit, JPEG, BMP,
 * GIF with all frames, TGA, PSD, PNM, HDR), EXIF orientation applied as PIL's
 * ImageOps.exif_transpose does, and conversion to ComfyUI's IMAGE and MASK floats.
 *
 * Plain functions with no host calls (libc allocation), usable from unit tests. Any
 * thread: stb's error text is thread-local and no stb global setting is changed. */
#ifndef KILN_NODES_CORE_IMAGE_DECODE_H
#define KILN_NODES_CORE_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* A decoded file: every frame expanded to RGBA samples. */
typedef struct kiln__core_decoded {
    int width, height, frames;
    int is16;               /* samples are uint16_t (16-bit PNG), else uint8_t */
    int has_alpha;          /* the file has alpha (or palette transparency) */
    void *pixels;           /* owned (free()): [frames, height, width, 4] samples */
} kiln__core_decoded_t;

/* Decodes a file's bytes into *out and applies its EXIF orientation. Files whose frames
 * would hold more than max_elements IMAGE floats (frames * height * width * 3) are
 * refused before decoding where the header tells the size. Returns 0, KILN_EPARSE (not an
 * image, corrupt or unsupported: err says why), KILN_ELIMIT (too large) or KILN_ENOMEM. */
int kiln__core_image_decode(const uint8_t *data, size_t len, int64_t max_elements,
                            kiln__core_decoded_t *out, char *err, size_t err_size);

/* Frees the pixels of a decoded image (NULL-safe) and zeroes it. */
void kiln__core_decoded_free(kiln__core_decoded_t *d);

/* Writes IMAGE [frames, height, width, 3] = rgb / 255 (or / 65535) and, when mask is
 * non-NULL and the image has alpha, MASK [frames, height, width] = 1 - alpha. */
void kiln__core_decoded_to_float(const kiln__core_decoded_t *d, float *image, float *mask);

/* The EXIF orientation (1..8) of a JPEG (APP1 "Exif") or PNG (eXIf chunk); 1 when the
 * file has none or it cannot be read. */
int kiln__core_exif_orientation(const uint8_t *data, size_t len);

/* Re-orients every frame of d as PIL's exif_transpose does for an orientation value:
 * 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
 * 8 rotate 90 counter-clockwise (1 and others: unchanged). 0 or KILN_ENOMEM. */
int kiln__core_decoded_orient(kiln__core_decoded_t *d, int orientation);

#endif
