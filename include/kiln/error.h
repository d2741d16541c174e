/* kiln error codes. A fallible function returns int: 0 on success, a negative KILN_E*
 * on failure. KILN_ERRNO_MAP generates the enum, kiln_strerror() and kiln_err_name(). */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include "kiln/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ERRNO_MAP(XX)                                                   \
    XX(NOMEM, -1, "out of memory")                                           \
    XX(INVAL, -2, "invalid argument")                                        \
    XX(PARSE, -3, "malformed input")                                         \
    XX(NOTFOUND, -4, "not found")                                            \
    XX(EXISTS, -5, "already exists")                                         \
    XX(IO, -6, "input/output error")                                         \
    XX(RANGE, -7, "value out of range")                                      \
    XX(TYPE, -8, "type mismatch")                                            \
    XX(VALIDATION, -9, "prompt failed validation")                           \
    XX(INTERRUPTED, -10, "interrupted")                                      \
    XX(NODE, -11, "node execution failed")                                   \
    XX(BUSY, -12, "resource busy")                                           \
    XX(ABI, -13, "incompatible plugin ABI")                                  \
    XX(DEVICE, -14, "device error")                                          \
    XX(DEVICE_OOM, -15, "device out of memory")                              \
    XX(UNSUPPORTED, -16, "operation not supported")                          \
    XX(LIMIT, -17, "size limit exceeded")

typedef enum kiln_errno {
#define KILN_ERRNO_ENUM_(name, val, msg) KILN_E##name = (val),
    KILN_ERRNO_MAP(KILN_ERRNO_ENUM_)
#undef KILN_ERRNO_ENUM_
    KILN_OK = 0
} kiln_errno_t;

/* A static English message for an error code ("unknown error" for others). */
KILN_API const char *kiln_strerror(int err);

/* The code's name without the prefix, e.g. "INVAL". */
KILN_API const char *kiln_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
