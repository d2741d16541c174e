/* kiln version numbers and the ABI promise.
 *
 * KILN_ABI_MAJOR changes only when a plugin built against an older header can no longer
 * work (a struct field moved, a host function's meaning changed); the loader refuses such
 * a pack with a clear message. KILN_ABI_MINOR grows when functions are appended to the
 * host table or fields appended to structs; a pack built against an older minor keeps
 * working, and a pack built against a newer minor checks KILN_API_HAS() before it calls
 * anything newer than the host it runs in. */
#ifndef KILN_VERSION_H
#define KILN_VERSION_H

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.1.0"
#define KILN_VERSION_HEX \
    ((KILN_VERSION_MAJOR << 16) | (KILN_VERSION_MINOR << 8) | KILN_VERSION_PATCH)

#define KILN_ABI_MAJOR 1
#define KILN_ABI_MINOR 2

#endif
