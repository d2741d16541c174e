/* Confining client-named paths to a folder: /view, the uploads and the static files take
 * a folder (output, input, temp, web root), a client subfolder and a client file name,
 * and must never reach outside the folder — not through "..", not through an absolute
 * path, and not through a symbolic link inside the folder that points elsewhere. The
 * lexical check runs first (a clear 400/403 without touching the disk), then the real
 * path of what exists is checked against the real path of the folder. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/paths.h"
#include "server/server_int.h"

bool kiln__path_name_ok(const char *name)
{
    return name && *name && !strchr(name, '/') && !strchr(name, '\\') && strcmp(name, ".") &&
           strcmp(name, "..");
}

bool kiln__path_sub_ok(const char *sub)
{
    if (!sub || !*sub)
        return true;
    if (sub[0] == '/' || strchr(sub, '\\'))
        return false;
    /* Each component must be a plain name; "" (a//b) and "." are harmless. */
    for (const char *p = sub; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

/* True when real (a resolved path) is root or lies under it. */
static bool under(const char *root, const char *real)
{
    size_t n = strlen(root);
    if (strncmp(root, real, n))
        return false;
    return real[n] == 0 || real[n] == '/' || (n == 1 && root[0] == '/');
}

int kiln__path_resolve(const char *dir, const char *sub, const char *name, bool must_exist,
                       char **out)
{
    *out = NULL;
    if (!kiln__path_sub_ok(sub))
        return KILN_EINVAL;
    if (name && !kiln__path_name_ok(name))
        return KILN_EINVAL;
    char root[PATH_MAX];
    if (!realpath(dir, root))
        return KILN_ENOTFOUND;
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, root);
    if (sub && *sub) {
        kiln__sbuf_putc(&b, '/');
        kiln__sbuf_puts(&b, sub);
    }
    if (name) {
        kiln__sbuf_putc(&b, '/');
        kiln__sbuf_puts(&b, name);
    }
    char *full = kiln__sbuf_take(&b, NULL);
    if (!full)
        return KILN_ENOMEM;
    char real[PATH_MAX];
    if (realpath(full, real)) {
        if (!under(root, real)) {
            free(full);
            return KILN_EINVAL;   /* a link inside the folder points out of it */
        }
    } else if (must_exist || errno != ENOENT) {
        free(full);
        return KILN_ENOTFOUND;
    }
    *out = full;
    return 0;
}

int kiln__path_make_dir(const char *dir, const char *sub, char **out)
{
    *out = NULL;
    if (!kiln__path_sub_ok(sub))
        return KILN_EINVAL;
    char *target = NULL;
    int rc = kiln__path_resolve(dir, sub, NULL, false, &target);
    if (rc != 0)
        return rc;
    if (kiln__srv_mkdirs(target) != 0) {
        free(target);
        return KILN_EIO;
    }
    /* Created or not, the folder must still resolve inside dir (a link may point out). */
    free(target);
    rc = kiln__path_resolve(dir, sub, NULL, true, &target);
    if (rc != 0)
        return rc == KILN_ENOTFOUND ? KILN_EIO : rc;
    struct stat st;
    if (stat(target, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(target);
        return KILN_EINVAL;
    }
    *out = target;
    return 0;
}
