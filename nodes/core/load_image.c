/* LoadImage (category image): reads an image from the input folder (or the output/temp
 * folder for names annotated " [output]" / " [temp]") into IMAGE [N, H, W, 3] and MASK
 * (1 - alpha, or a 64x64 zero mask per frame when the file has no alpha). The file's
 * SHA-256 is its is_changed fingerprint, and validation reports a missing file the way
 * ComfyUI's VALIDATE_INPUTS does. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core_int.h"
#include "file_naming.h"
#include "image_decode.h"
#include "sha256.h"

#define NAME_MAX_BYTES 4096

/* Resolves the "image" constant to a path. Returns 0, KILN_ENOTFOUND when the input is
 * linked or absent (nothing to check), or KILN_EINVAL for a name that escapes its folder
 * or a folder the host does not know. `name` receives the input text. */
static int image_path(kiln_call_t *call, char *name, char *path)
{
    const char *s = NULL;
    size_t len = 0;
    const kiln_value_t *v = kiln_call_input(call, "image");
    name[0] = 0;
    if (!v || kiln_value_get_string(v, &s, &len) != 0)
        return KILN_ENOTFOUND;
    snprintf(name, NAME_MAX_BYTES, "%.*s", (int)(len < NAME_MAX_BYTES ? len : NAME_MAX_BYTES - 1),
             s);
    kiln_dir_t dir;
    char rel[NAME_MAX_BYTES];
    if (kiln__core_annotated_name(s, len, &dir, rel, sizeof rel) != 0)
        return KILN_EINVAL;
    const char *base = kiln_call_dir(call, dir);
    if (!base || kiln__core_path_join(base, rel, path, NAME_MAX_BYTES) != 0)
        return KILN_EINVAL;
    return 0;
}

/* Reads a whole file into kiln_malloc'd memory. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT || errno == ENOTDIR ? KILN_ENOTFOUND : KILN_EIO;
    struct stat st;
    int err = fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ? KILN_ENOTFOUND : 0;
    if (!err && (st.st_size <= 0 || st.st_size > 0x7fffffff))
        err = KILN_ELIMIT;
    *data = err ? NULL : kiln_malloc((size_t)st.st_size);
    if (!err && !*data)
        err = KILN_ENOMEM;
    if (!err && fread(*data, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        err = KILN_EIO;
    fclose(f);
    if (err && *data) {
        kiln_free(*data);
        *data = NULL;
    }
    *len = err ? 0 : (size_t)st.st_size;
    return err;
}

static int emit(kiln_call_t *call, const kiln__core_decoded_t *d)
{
    int64_t ishape[4] = {d->frames, d->height, d->width, 3};
    int64_t mshape[3] = {d->frames, d->has_alpha ? d->height : 64, d->has_alpha ? d->width : 64};
    kiln_tensor_t *image = NULL, *mask = NULL;
    float *idata, *mdata;
    int err = kiln__core_new_f32(call, 4, ishape, &image, &idata);
    if (!err)
        err = kiln__core_new_f32(call, 3, mshape, &mask, &mdata);
    if (err) {
        kiln_tensor_release(image);
        return err;
    }
    kiln__core_decoded_to_float(d, idata, d->has_alpha ? mdata : NULL); // [N, H, W, 3], [N, H, W]
    err = kiln__core_set_tensor_output(call, 0, "IMAGE", image);
    if (err) {
        kiln_tensor_release(mask);
        return err;
    }
    return kiln__core_set_tensor_output(call, 1, "MASK", mask);
}

static int load_execute(kiln_call_t *call)
{
    char name[NAME_MAX_BYTES], path[NAME_MAX_BYTES], why[256] = "";
    if (image_path(call, name, path) != 0)
        return kiln_call_failf(call, "Invalid image file: %s", name);
    uint8_t *data = NULL;
    size_t len = 0;
    int err = read_file(path, &data, &len);
    if (err == KILN_ENOTFOUND)
        return kiln_call_failf(call, "Invalid image file: %s", name);
    if (err)
        return kiln_call_failf(call, "cannot read image file %s: %s", name,
                               err == KILN_ELIMIT   ? "empty or larger than 2 GiB"
                               : err == KILN_ENOMEM ? "out of memory"
                                                    : "read error");
    kiln__core_decoded_t d;
    err = kiln__core_image_decode(data, len, KILN__CORE_MAX_ELEMENTS, &d, why, sizeof why);
    kiln_free(data);
    if (err)
        return kiln_call_failf(call, "cannot load image %s: %s", name, why);
    err = emit(call, &d);
    kiln__core_decoded_free(&d);
    return err;
}

static int load_is_changed(kiln_call_t *call, char *out, size_t out_size)
{
    char name[NAME_MAX_BYTES], path[NAME_MAX_BYTES], hex[65];
    if (image_path(call, name, path) != 0 || kiln__core_sha256_file(path, hex) != 0)
        return kiln_call_failf(call, "Invalid image file: %s", name);
    if (out_size < sizeof hex)
        return kiln_call_fail(call, "is_changed buffer too small");
    memcpy(out, hex, sizeof hex);
    return 0;
}

static int load_validate(kiln_call_t *call, char *msg, size_t msg_size)
{
    char name[NAME_MAX_BYTES], path[NAME_MAX_BYTES];
    int err = image_path(call, name, path);
    if (err == KILN_ENOTFOUND)
        return 0;   /* a linked name is checked when it arrives */
    struct stat st;
    if (err || stat(path, &st) != 0) {
        snprintf(msg, msg_size, "Invalid image file: %s", name);
        return KILN_EVALIDATION;
    }
    return 0;
}

static const char *const load_validates[] = {"image", NULL};

static const kiln_input_def_t load_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "COMBO", .options_folder = "input",
     .flags = KILN_INPUT_IMAGE_UPLOAD},
    {0}};

static const kiln_output_def_t load_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {KILN_OUTPUT_DEF_INIT, .type = "MASK"}, {0}};

const kiln_node_def_t kiln__core_load_image = {
    KILN_NODE_DEF_INIT, .name = "LoadImage", .display_name = "Load Image", .category = "image",
    .inputs = load_inputs, .outputs = load_outputs, .execute = load_execute,
    .is_changed = load_is_changed, .validate = load_validate, .validates = load_validates};
