/* Path confinement for files clients name (paths.c), and the image helpers of /view and
 * /upload/mask (srv_image.c), and the multipart parser of the uploads (multipart.c). */
#ifndef KILN_SERVER_PATHS_H
#define KILN_SERVER_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* A single file name component: non-empty, no '/', '\\', not "." or "..". */
bool kiln__path_name_ok(const char *name);
/* A relative subfolder without ".." components (empty is fine). */
bool kiln__path_sub_ok(const char *sub);

/* dir/sub/name (name may be NULL) as a path whose real location is inside dir. *out is
 * malloc'd. KILN_EINVAL: the path would leave dir (lexically or through a link);
 * KILN_ENOTFOUND: dir is missing, or the file is and must_exist. */
int kiln__path_resolve(const char *dir, const char *sub, const char *name, bool must_exist,
                       char **out);

/* Creates dir/sub (mkdir -p) and returns its path, checked to be inside dir after
 * creation. KILN_EINVAL for an escaping sub, KILN_EIO when it cannot be created. */
int kiln__path_make_dir(const char *dir, const char *sub, char **out);

/* ---- images (srv_image.c) ------------------------------------------------------------- */

typedef struct kiln__img {
    unsigned char *rgba;         /* owned: w * h * 4 bytes */
    int w, h;
    bool has_alpha;              /* the file had an alpha channel */
} kiln__img_t;

/* Decodes PNG, JPEG, BMP, GIF (first frame), TGA... to 8-bit RGBA. KILN_EPARSE when the
 * bytes are not an image this decoder reads. */
int kiln__img_decode(const void *data, size_t len, kiln__img_t *out);
void kiln__img_free(kiln__img_t *img);
/* PNG of the image with 3 (RGB) or 4 (RGBA) channels, zlib level 4; malloc'd. */
unsigned char *kiln__img_png(const kiln__img_t *img, int channels, size_t *len);
/* JPEG (alpha dropped) at quality 1..100; malloc'd. */
unsigned char *kiln__img_jpeg(const kiln__img_t *img, int quality, size_t *len);
/* True when some pixel is not fully opaque. */
bool kiln__img_translucent(const kiln__img_t *img);
/* A copy of png with the tEXt/zTXt/iTXt chunks of src inserted after its IHDR (metadata
 * kept when /upload/mask rewrites an image); malloc'd. src that is not a PNG adds none. */
unsigned char *kiln__png_with_text(const unsigned char *png, size_t len, const void *src,
                                   size_t src_len, size_t *out_len);

/* ---- multipart/form-data (multipart.c) ------------------------------------------------ */

typedef struct kiln__part {
    char *name;                  /* owned: the form field name */
    char *filename;              /* owned: the file name, NULL for a plain field */
    const char *data;            /* borrowed from the body */
    size_t len;
} kiln__part_t;

/* Splits a multipart/form-data body (content_type carries the boundary). 0, or
 * KILN_EINVAL (not multipart / no boundary) or KILN_EPARSE (malformed or truncated) with
 * the reason in err. */
int kiln__multipart_parse(const char *content_type, const char *body, size_t len,
                          kiln__part_t **parts, size_t *n, char *err, size_t err_size);
void kiln__multipart_free(kiln__part_t *parts, size_t n);
/* The first part named name, or NULL. */
const kiln__part_t *kiln__multipart_get(const kiln__part_t *parts, size_t n, const char *name);

#endif
