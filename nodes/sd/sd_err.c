/* Error messages into caller buffers (see sd_err.h). */
#include "sd_err.h"

#include <stdio.h>

int sd_verrf(char *err, size_t size, int rc, const char *fmt, va_list ap)
{
    if (err && size > 0)
        vsnprintf(err, size, fmt, ap);
    return rc;
}

int sd_errf(char *err, size_t size, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sd_verrf(err, size, rc, fmt, ap);
    va_end(ap);
    return rc;
}
