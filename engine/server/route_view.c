/* GET /view (§4.2): a file of the output, input or temp folder, optionally re-encoded as a
 * preview or reduced to its RGB or alpha channels. The checks are ComfyUI's (400 for an
 * empty filename, a leading '/' or "..", 403 for a subfolder leaving the folder, 404 for
 * a missing file) plus one ComfyUI lacks: a symbolic link inside the folder that points
 * out of it answers 403 too.
 *
 * Previews: `preview=jpeg;Q` answers a JPEG. kiln has no WebP encoder, so
 * `preview=webp;Q` (ComfyUI's default format) answers a JPEG as well, or the image as PNG
 * when it has transparent pixels (a JPEG would lose them); Content-Type says which. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/paths.h"
#include "server/server_int.h"

#define MAX_VIEW_BYTES ((size_t)1 << 30)   /* files served by /view are read whole */

/* The folder of a type name, or NULL. */
static const char *type_dir(const kiln__srv_t *srv, const char *type)
{
    if (!strcmp(type, "output"))
        return srv->cfg.output_dir;
    if (!strcmp(type, "input"))
        return srv->cfg.input_dir;
    if (!strcmp(type, "temp"))
        return srv->cfg.temp_dir;
    return NULL;
}

/* "name.png [output]" names its type: strips the annotation into *type. */
static void annotation(char *name, const char **type)
{
    static const char *const types[] = {"output", "input", "temp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < 3; i++) {
        char suffix[16];
        size_t sl = (size_t)snprintf(suffix, sizeof suffix, " [%s]", types[i]);
        if (n > sl && !strcmp(name + n - sl, suffix)) {
            name[n - sl] = 0;
            *type = types[i];
            return;
        }
    }
}

static void disposition(kiln__req_t *r, const char *base)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "filename=\"");
    for (const char *p = base; *p; p++)
        if (*p != '"' && *p != '\r' && *p != '\n')
            kiln__sbuf_putc(&b, *p);
    kiln__sbuf_putc(&b, '"');
    if (!b.failed)
        kiln__req_add_header(r, "content-disposition", b.data);
    kiln__sbuf_free(&b);
}

/* Answers the re-encoded image; false when the file is not a decodable image. */
static bool reencode(kiln__req_t *r, const char *data, size_t len, const char *preview,
                     const char *channel)
{
    /* ComfyUI forces an alpha-keeping format only for an explicit channel with 'a'. */
    const char *asked = kiln__req_arg(r, "channel");
    kiln__img_t img;
    if (kiln__img_decode(data, len, &img) != 0)
        return false;
    unsigned char *out = NULL;
    size_t n = 0;
    const char *ctype = "image/png";
    if (preview) {
        const char *semi = strrchr(preview, ';');
        int quality = semi && semi[1] ? atoi(semi + 1) : 90;
        bool wants_alpha = asked && strchr(asked, 'a') != NULL;
        bool jpeg = !strncmp(preview, "jpeg", 4) && !wants_alpha;
        if (!jpeg && (wants_alpha || kiln__img_translucent(&img)) && strcmp(channel, "rgb")) {
            out = kiln__img_png(&img, 4, &n);
        } else {
            out = kiln__img_jpeg(&img, quality > 0 ? quality : 90, &n);
            ctype = "image/jpeg";
        }
    } else if (!strcmp(channel, "rgb")) {
        out = kiln__img_png(&img, 3, &n);
    } else {
        /* channel=a: black pixels carrying the source alpha (opaque without one). */
        size_t px = (size_t)img.w * (size_t)img.h;
        for (size_t i = 0; i < px; i++) {
            unsigned char a = img.has_alpha ? img.rgba[i * 4 + 3] : 255;
            memset(img.rgba + i * 4, 0, 3);
            img.rgba[i * 4 + 3] = a;
        }
        out = kiln__img_png(&img, 4, &n);
    }
    kiln__img_free(&img);
    if (!out)
        kiln__req_reply_error(r, 500, "internal_error", "cannot encode the image");
    else
        kiln__req_reply(r, 200, ctype, (char *)out, n);
    return true;
}

static const char *raw_type(const char *name)
{
    const char *t = kiln__srv_mime(name);
    /* ComfyUI makes browsers download what they would otherwise run or render. */
    if (!strncmp(t, "text/html", 9) || !strncmp(t, "application/javascript", 22) ||
        !strncmp(t, "text/css", 8) || !strcmp(t, "application/xhtml+xml"))
        return "application/octet-stream";
    return t;
}

static void view_work(kiln__req_t *r)
{
    const char *given = kiln__req_arg(r, "filename");
    const char *type = kiln__req_arg(r, "type");
    const char *sub = kiln__req_arg(r, "subfolder");
    const char *preview = kiln__req_arg(r, "preview");
    const char *channel = kiln__req_arg(r, "channel");
    type = type ? type : "output";
    channel = channel ? channel : "rgba";
    char *name = strdup(given);
    if (!name) {
        kiln__req_reply_error(r, 500, "internal_error", "out of memory");
        return;
    }
    annotation(name, &type);
    const char *dir = type_dir(r->srv, type);
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    char *path = NULL;
    int rc = KILN_EINVAL;
    if (!name[0] || name[0] == '/' || strstr(name, ".."))
        kiln__req_reply_error(r, 400, "invalid_filename", "invalid filename '%s'", given);
    else if (!dir)
        kiln__req_reply_error(r, 400, "invalid_type", "type must be output, input or temp");
    else if (!kiln__path_sub_ok(sub))
        kiln__req_reply_error(r, 403, "forbidden", "subfolder leaves the %s folder", type);
    else if ((rc = kiln__path_resolve(dir, sub, base, true, &path)) == KILN_EINVAL)
        kiln__req_reply_error(r, 403, "forbidden", "path leaves the %s folder", type);
    else if (rc != 0)
        kiln__req_reply_error(r, 404, "not_found", "no file '%s' in %s", base, type);
    char *data = NULL;
    size_t len = 0;
    if (rc == 0 && (rc = kiln__srv_read_file(path, MAX_VIEW_BYTES, &data, &len)) != 0)
        kiln__req_reply_error(r, rc == KILN_ENOTFOUND ? 404 : 500, "unreadable",
                              "cannot read '%s': %s", base, kiln_strerror(rc));
    if (rc == 0) {
        disposition(r, base);
        bool convert = preview || !strcmp(channel, "rgb") || !strcmp(channel, "a");
        if (!convert || !reencode(r, data, len, preview, channel)) {
            kiln__req_reply(r, 200, raw_type(base), data, len);
            data = NULL;
        }
    }
    free(data);
    free(path);
    free(name);
}

void kiln__route_view(kiln__req_t *r)
{
    if (!kiln__req_arg(r, "filename")) {
        kiln__req_reply_error(r, 404, "not_found", "/view needs a filename");
        return;
    }
    kiln__req_defer(r, view_work);
}
