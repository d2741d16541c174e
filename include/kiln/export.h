/* KILN_API marks the symbols libkiln exports; everything else is hidden. */
#ifndef KILN_EXPORT_H
#define KILN_EXPORT_H

#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#endif
