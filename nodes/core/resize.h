/* Image resizing for ImageScale, ImageScaleBy and ImageBatch, reproducing what ComfyUI's
 * comfy.utils.common_upscale gets from torch.nn.functional.interpolate (nearest-exact,
 * bilinear, area, bicubic; align_corners=False, no antialiasing) and from PIL (lanczos,
 * computed on 8-bit pixels as ComfyUI does), plus its center crop.
 *
 * Images are dense float32 [B, H, W, C] in host memory. Plain functions with no host
 * calls (libc scratch memory), usable from unit tests. Any thread. */
#ifndef KILN_NODES_CORE_RESIZE_H
#define KILN_NODES_CORE_RESIZE_H

#include <stddef.h>
#include <stdint.h>

typedef enum kiln__core_resize_method {
    KILN__CORE_RESIZE_NEAREST_EXACT = 0,
    KILN__CORE_RESIZE_BILINEAR = 1,
    KILN__CORE_RESIZE_AREA = 2,
    KILN__CORE_RESIZE_BICUBIC = 3,
    KILN__CORE_RESIZE_LANCZOS = 4
} kiln__core_resize_method_t;

/* The upscale_method combo choices in ComfyUI's order, indexed by the enum; NULL-ended. */
extern const char *const kiln__core_resize_method_names[];

/* Maps a method name to *out. Returns 0 or KILN_EINVAL for an unknown name. */
int kiln__core_resize_method_parse(const char *name, kiln__core_resize_method_t *out);

/* A region of the source image. */
typedef struct kiln__core_rect {
    int64_t y, x;           /* top-left corner */
    int64_t h, w;           /* size */
} kiln__core_rect_t;

/* common_upscale's crop="center": the largest centered region of an h x w image whose
 * aspect ratio matches out_w / out_h (offsets rounded half to even, as Python's round). */
void kiln__core_center_crop(int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                            kiln__core_rect_t *r);

/* Resizes region `crop` (NULL: the whole image) of src [batch, h, w, c] into
 * dst [batch, out_h, out_w, c]. Returns 0, KILN_EINVAL (empty sizes, a crop outside the
 * image, an unknown method) or KILN_ENOMEM. */
int kiln__core_resize(const float *src, int64_t batch, int64_t h, int64_t w, int64_t c,
                      const kiln__core_rect_t *crop, kiln__core_resize_method_t method,
                      float *dst, int64_t out_h, int64_t out_w);

/* The lanczos path of kiln__core_resize for one image src [h, w, c] (w is the row length;
 * the height is implied by r): region r is quantized to 8 bits as ComfyUI does before
 * handing it to PIL, resampled as PIL's Image.resize(LANCZOS) does, and written to dst
 * [out_h, out_w, c] as byte / 255. Returns 0, KILN_EINVAL or KILN_ENOMEM. */
int kiln__core_resize_lanczos(const float *src, int64_t w, int64_t c, const kiln__core_rect_t *r,
                              float *dst, int64_t out_h, int64_t out_w);

#endif
