/* Error messages of the sd pack's plain-C modules: formatted into a caller's buffer. */
#ifndef SD_ERR_H
#define SD_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Formats the message into err (when err is non-NULL and size > 0) and returns rc, so
 * that a failing path reads `return sd_errf(err, n, KILN_EINVAL, "...", ...);`. */
int sd_errf(char *err, size_t size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sd_verrf(char *err, size_t size, int rc, const char *fmt, va_list ap);

#endif
