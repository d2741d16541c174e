/* Input and output helpers of the example pack: reading an IMAGE as dense float32,
 * making a new image, and handing a tensor over as an output value. They show the
 * ownership rules in one place: inputs are borrowed, a tensor this pack creates is its
 * own until it becomes a value, and a value handed to kiln_call_set_output is the host's. */
#include "example.h"

#include <string.h>

int example_input_image(kiln_call_t *call, const char *name, example_image_t *img)
{
    memset(img, 0, sizeof *img);
    /* Borrowed for the call: no release, and never written (other nodes may read it). */
    kiln_tensor_t *t = kiln_value_get_tensor(kiln_call_input(call, name));
    if (!t)
        return kiln_call_failf(call, "input '%s' is missing or is not an image", name);
    if (kiln_tensor_ndim(t) != 4 || kiln_tensor_dtype(t) != KILN_DTYPE_F32)
        return kiln_call_failf(call, "input '%s' must be a float32 IMAGE [B, H, W, C]", name);
    for (int i = 0; i < 4; i++)
        if (kiln_tensor_dim(t, i) < 1)
            return kiln_call_failf(call, "input '%s' is an empty image", name);
    /* A view (a slice, a permutation) has gaps between its elements; the loops of this
     * pack want them dense. contiguous() returns t itself, retained, when it already is. */
    int rc = kiln_tensor_contiguous(t, &img->t);
    if (rc != 0)
        return kiln_call_failf(call, "input '%s': cannot read the image (error %d)", name, rc);
    img->data = kiln_tensor_data(img->t);
    img->b = kiln_tensor_dim(img->t, 0);
    img->h = kiln_tensor_dim(img->t, 1);
    img->w = kiln_tensor_dim(img->t, 2);
    img->c = kiln_tensor_dim(img->t, 3);
    if (!img->data) {
        example_image_release(img);
        return kiln_call_failf(call, "input '%s' is not in host memory", name);
    }
    return 0;
}

void example_image_release(example_image_t *img)
{
    kiln_tensor_release(img->t); /* NULL-safe */
    memset(img, 0, sizeof *img);
}

int example_input_float(kiln_call_t *call, const char *name, double *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_float(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a number", name);
    return 0;
}

int example_new_image(kiln_call_t *call, const int64_t shape[4], kiln_tensor_t **out,
                      float **data)
{
    *out = kiln_tensor_new(KILN_DTYPE_F32, 4, shape); // [B, H, W, C], zero-filled
    if (!*out)
        return kiln_call_fail(call, "out of memory");
    *data = kiln_tensor_data(*out);
    return 0;
}

int example_set_image(kiln_call_t *call, int index, kiln_tensor_t *t)
{
    kiln_value_t *v = kiln_value_new_tensor("IMAGE", t); /* the value retains t */
    kiln_tensor_release(t);                              /* ... so ours goes */
    if (!v)
        return kiln_call_fail(call, "out of memory");
    return kiln_call_set_output(call, index, v);         /* v is the host's from here */
}
