/* kiln_strerror() and kiln_err_name(), generated from KILN_ERRNO_MAP. */
#include <kiln/error.h>

const char *kiln_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define KILN_ERR_MSG_(name, val, msg) \
    case val:                         \
        return msg;
        KILN_ERRNO_MAP(KILN_ERR_MSG_)
#undef KILN_ERR_MSG_
    default:
        return "unknown error";
    }
}

const char *kiln_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define KILN_ERR_NAME_(name, val, msg) \
    case val:                          \
        return #name;
        KILN_ERRNO_MAP(KILN_ERR_NAME_)
#undef KILN_ERR_NAME_
    default:
        return "UNKNOWN";
    }
}
