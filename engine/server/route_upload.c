/* POST /upload/image and /upload/mask (§4.2): multipart uploads into the input (default),
 * temp or output folder. Without overwrite, a name already taken is reused when its
 * content is identical (ComfyUI compares hashes; comparing the bytes gives the same
 * answer) and otherwise renamed "name (1).ext", "name (2).ext", ... The response names
 * the final file. A mask upload composites the uploaded alpha onto the image named by
 * original_ref and saves a PNG keeping the original's text chunks.
 * Differences from ComfyUI, for clear errors: an unknown type answers 400 (ComfyUI: 500),
 * and a mask whose original is missing or of another size answers 404/400 (ComfyUI saves
 * nothing and still answers 200). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json/json.h"
#include "server/paths.h"
#include "server/server_int.h"

typedef struct upload {
    kiln__part_t *parts;
    size_t n;
    const kiln__part_t *image;
    char *type;                  /* owned */
    char *subfolder;             /* owned */
    bool overwrite;
    const char *dir;             /* borrowed: the type's folder */
} upload_t;

static char *field(const kiln__part_t *parts, size_t n, const char *name, const char *dflt)
{
    const kiln__part_t *p = kiln__multipart_get(parts, n, name);
    return p ? strndup(p->data, p->len) : dflt ? strdup(dflt) : NULL;
}

/* Parses the form; replies and returns false on a bad request. */
static bool read_form(kiln__req_t *r, upload_t *u)
{
    char err[256];
    int rc = kiln__multipart_parse(r->content_type, r->body.data ? r->body.data : "",
                                   r->body.len, &u->parts, &u->n, err, sizeof err);
    if (rc != 0) {
        kiln__req_reply_error(r, 400, "invalid_form", "%s", err);
        return false;
    }
    u->image = kiln__multipart_get(u->parts, u->n, "image");
    u->type = field(u->parts, u->n, "type", "input");
    u->subfolder = field(u->parts, u->n, "subfolder", "");
    char *ow = field(u->parts, u->n, "overwrite", "");
    u->overwrite = ow && (!strcmp(ow, "true") || !strcmp(ow, "1"));
    free(ow);
    if (!u->type || !u->subfolder) {
        kiln__req_reply_error(r, 500, "internal_error", "out of memory");
        return false;
    }
    u->dir = !strcmp(u->type, "input")    ? r->srv->cfg.input_dir
             : !strcmp(u->type, "temp")   ? r->srv->cfg.temp_dir
             : !strcmp(u->type, "output") ? r->srv->cfg.output_dir
                                          : NULL;
    if (!u->image || !u->image->filename || !u->image->filename[0]) {
        kiln__req_reply_error(r, 400, "missing_image", "the form needs an 'image' file part");
        return false;
    }
    if (!u->dir) {
        kiln__req_reply_error(r, 400, "invalid_type", "type must be input, temp or output");
        return false;
    }
    if (!kiln__path_name_ok(u->image->filename)) {
        kiln__req_reply_error(r, 400, "invalid_filename", "invalid file name '%s'",
                              u->image->filename);
        return false;
    }
    return true;
}

static bool same_content(const char *path, const void *data, size_t len)
{
    char *old = NULL;
    size_t n = 0;
    bool same = kiln__srv_read_file(path, len, &old, &n) == 0 && n == len &&
                !memcmp(old, data, len);
    free(old);
    return same;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The final file name in folder: reuse, rename or overwrite. *dup: identical file found. */
static char *final_name(const char *folder, const upload_t *u, const void *data, size_t len,
                        bool *dup)
{
    const char *name = u->image->filename;
    const char *dot = strrchr(name, '.');
    size_t stem = dot && dot != name ? (size_t)(dot - name) : strlen(name);
    const char *ext = name + stem;
    char *cand = strdup(name);
    *dup = false;
    for (int i = 1; cand && !u->overwrite; i++) {
        char *path = kiln__srv_join(folder, cand);
        bool taken = path && exists(path);
        *dup = taken && same_content(path, data, len);
        free(path);
        if (!taken || *dup)
            break;
        free(cand);
        size_t n = stem + strlen(ext) + 24;
        cand = malloc(n);
        if (cand)
            snprintf(cand, n, "%.*s (%d)%s", (int)stem, name, i, ext);
    }
    return cand;
}

static void respond(kiln__req_t *r, const upload_t *u, const char *name)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"name\": ");
    kiln__srv_json_str(&b, name);
    kiln__sbuf_puts(&b, ", \"subfolder\": ");
    kiln__srv_json_str(&b, u->subfolder);
    kiln__sbuf_puts(&b, ", \"type\": ");
    kiln__srv_json_str(&b, u->type);
    kiln__sbuf_putc(&b, '}');
    kiln__req_reply_json(r, 200, kiln__sbuf_take(&b, NULL));
}

/* Saves data (the file's final bytes) under the upload's folder and answers. */
static void save(kiln__req_t *r, const upload_t *u, const void *data, size_t len)
{
    char *folder = NULL;
    int rc = kiln__path_make_dir(u->dir, u->subfolder, &folder);
    if (rc != 0) {
        kiln__req_reply_error(r, rc == KILN_EINVAL ? 400 : 500, "invalid_subfolder",
                              "cannot use subfolder '%s' of %s", u->subfolder, u->type);
        return;
    }
    bool dup = false;
    char *name = final_name(folder, u, data, len, &dup);
    char *path = name ? kiln__srv_join(folder, name) : NULL;
    if (!path)
        kiln__req_reply_error(r, 500, "internal_error", "out of memory");
    else if (!dup && kiln__srv_write_atomic(path, data, len) != 0)
        kiln__req_reply_error(r, 500, "write_failed", "cannot write '%s'", name);
    else
        respond(r, u, name);
    free(path);
    free(name);
    free(folder);
}

static void upload_free(upload_t *u)
{
    kiln__multipart_free(u->parts, u->n);
    free(u->type);
    free(u->subfolder);
}

static void image_work(kiln__req_t *r)
{
    upload_t u = {0};
    if (read_form(r, &u))
        save(r, &u, u.image->data, u.image->len);
    upload_free(&u);
}

/* ---- masks ---------------------------------------------------------------------------- */

/* Reads the image original_ref names; replies and returns false on failure. */
static bool read_original(kiln__req_t *r, const upload_t *u, char **data, size_t *len)
{
    const kiln__part_t *ref = kiln__multipart_get(u->parts, u->n, "original_ref");
    kiln__json_t *doc = NULL;
    char err[128];
    if (!ref || kiln__json_parse(ref->data, ref->len, &doc, err, sizeof err) != 0) {
        kiln__req_reply_error(r, 400, "invalid_original_ref",
                              "original_ref must be a JSON object {filename, subfolder, type}");
        return false;
    }
    const char *name = kiln__json_get_string(doc, "filename", "");
    const char *type = kiln__json_get_string(doc, "type", "output");
    const char *sub = kiln__json_get_string(doc, "subfolder", "");
    const char *dir = !strcmp(type, "input")    ? r->srv->cfg.input_dir
                      : !strcmp(type, "temp")   ? r->srv->cfg.temp_dir
                      : !strcmp(type, "output") ? r->srv->cfg.output_dir
                                                : NULL;
    char *path = NULL;
    int rc = dir ? kiln__path_resolve(dir, sub, name, true, &path) : KILN_EINVAL;
    if (rc == 0)
        rc = kiln__srv_read_file(path, (size_t)1 << 30, data, len);
    if (rc == KILN_EINVAL)
        kiln__req_reply_error(r, 400, "invalid_original_ref", "original_ref '%s' is not a "
                                                              "file of a known folder", name);
    else if (rc != 0)
        kiln__req_reply_error(r, 404, "not_found", "original image '%s' not found", name);
    free(path);
    kiln__json_free(doc);
    return rc == 0;
}

static void mask_work(kiln__req_t *r)
{
    upload_t u = {0};
    char *orig = NULL;
    size_t orig_len = 0;
    kiln__img_t img = {0}, mask = {0};
    if (!read_form(r, &u) || !read_original(r, &u, &orig, &orig_len))
        goto done;
    if (kiln__img_decode(orig, orig_len, &img) != 0 ||
        kiln__img_decode(u.image->data, u.image->len, &mask) != 0) {
        kiln__req_reply_error(r, 400, "invalid_image", "the original or the mask is not an "
                                                       "image");
        goto done;
    }
    if (img.w != mask.w || img.h != mask.h) {
        kiln__req_reply_error(r, 400, "size_mismatch", "mask is %dx%d, the image %dx%d", mask.w,
                              mask.h, img.w, img.h);
        goto done;
    }
    for (size_t i = 0, n = (size_t)img.w * (size_t)img.h; i < n; i++)
        img.rgba[i * 4 + 3] = mask.has_alpha ? mask.rgba[i * 4 + 3] : 255;
    size_t png_len = 0, out_len = 0;
    unsigned char *png = kiln__img_png(&img, 4, &png_len);
    unsigned char *out = png ? kiln__png_with_text(png, png_len, orig, orig_len, &out_len) : NULL;
    if (out)
        save(r, &u, out, out_len);
    else
        kiln__req_reply_error(r, 500, "internal_error", "cannot encode the mask");
    free(png);
    free(out);
done:
    kiln__img_free(&img);
    kiln__img_free(&mask);
    free(orig);
    upload_free(&u);
}

void kiln__route_upload_image(kiln__req_t *r)
{
    kiln__req_defer(r, image_work);
}

void kiln__route_upload_mask(kiln__req_t *r)
{
    kiln__req_defer(r, mask_work);
}
