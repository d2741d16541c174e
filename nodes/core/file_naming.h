/* File naming for image outputs and inputs, as ComfyUI's folder_paths does it:
 * filename_prefix tokens (%width%, %date parts%), the prefix's subfolder, the
 * <filename>_<counter:05d>_.png counter found by scanning the target folder, exclusive
 * creation so that concurrent savers never share a counter, and LoadImage's annotated
 * names ("x.png [output]") with checks that a name stays inside its folder.
 *
 * Plain functions with no host calls, usable from unit tests. Any thread. */
#ifndef KILN_NODES_CORE_FILE_NAMING_H
#define KILN_NODES_CORE_FILE_NAMING_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kiln/node.h"

/* Replaces the server-side tokens of a filename_prefix: %width% and %height% (of the
 * first image), %year%, %month%, %day%, %hour%, %minute%, %second% (from now, zero-padded
 * to two digits except the year). Other text, %batch_num% included, is copied unchanged.
 * Returns 0, or KILN_ERANGE when the result does not fit out_size. */
int kiln__core_naming_expand(const char *prefix, int64_t width, int64_t height,
                             const struct tm *now, char *out, size_t out_size);

/* Splits an expanded prefix into subfolder and filename after normalizing it as
 * os.path.normpath does ("a//b/./c/../d" -> "a/b/d"): subfolder is every component but
 * the last ("" for none, '/'-separated), filename the last. Returns 0; KILN_EINVAL when
 * the path is absolute or climbs above its root with "..", or names no file at all (then
 * err says why, when err is non-NULL); KILN_ERANGE when a result does not fit. */
int kiln__core_naming_split(const char *prefix, char *subfolder, size_t subfolder_size,
                            char *filename, size_t filename_size, char *err, size_t err_size);

/* The first counter to use for filename in folder: 1 + the largest counter among
 * entries named "<filename>_<digits>[_...]" (an entry "<filename>_<other>" counts as 0),
 * or 1 when there is none or the folder does not exist. Returns 0 or KILN_EIO. */
int kiln__core_naming_counter(const char *folder, const char *filename, uint64_t *counter);

/* Creates "<folder>/<filename>_<counter:05d>_.<ext>" with O_EXCL, moving on to the next
 * counter while the name exists, so two savers that read the same starting counter never
 * write one file. On success *fd is the open file (the caller closes it), *counter the
 * counter used and name the file name without folder. Returns 0, KILN_ERANGE (a name
 * does not fit), or KILN_EIO (the file cannot be created; errno says why). */
int kiln__core_naming_create(const char *folder, const char *filename, const char *ext,
                             uint64_t *counter, int *fd, char *name, size_t name_size);

/* Creates a directory and its missing parents (mkdir -p). Returns 0, or KILN_EIO when a
 * component cannot be created or is not a directory. */
int kiln__core_mkdirs(const char *path);

/* Writes s with every occurrence of token replaced by value into out. Returns 0 or
 * KILN_ERANGE when it does not fit. */
int kiln__core_str_replace(const char *s, const char *token, const char *value, char *out,
                           size_t out_size);

/* Joins a folder and a relative name with one '/' ("a" + "" is "a"). 0 or KILN_ERANGE. */
int kiln__core_path_join(const char *folder, const char *name, char *out, size_t out_size);

/* Resolves a LoadImage name of len bytes: a trailing "[output]", "[input]" or "[temp]"
 * (with the space before it) selects that folder and is removed; otherwise *dir is
 * KILN_DIR_INPUT. The remaining relative name goes to rel. Returns 0; KILN_EINVAL when the
 * name is empty, holds a NUL byte, is absolute or has a ".." component; KILN_ERANGE when
 * it does not fit rel. */
int kiln__core_annotated_name(const char *name, size_t len, kiln_dir_t *dir, char *rel,
                              size_t rel_size);

#endif
