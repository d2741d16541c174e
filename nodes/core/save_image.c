/* SaveImage and PreviewImage (category image, output nodes): each image of the batch
 * becomes an 8-bit PNG carrying the prompt/workflow text chunks, named
 * <filename>_<counter:05d>_.png in the output folder (SaveImage, zlib level 4) or the temp
 * folder (PreviewImage, prefix "ComfyUI_temp_" + 5 random letters, level 1), and is
 * reported in the node's UI output as {"filename", "subfolder", "type"}. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core_int.h"
#include "file_naming.h"
#include "png_write.h"

#define PATH_BYTES 4096

/* What differs between SaveImage and PreviewImage (the node's userdata). */
typedef struct save_mode {
    kiln_dir_t dir;
    const char *type;       /* UI "type" */
    int level;              /* zlib level */
    int preview;            /* random temp prefix instead of filename_prefix */
} save_mode_t;

static const save_mode_t save_output_mode = {KILN_DIR_OUTPUT, "output", 4, 0};
static const save_mode_t save_temp_mode = {KILN_DIR_TEMP, "temp", 1, 1};

/* PreviewImage's prefix: "ComfyUI_temp_" plus five random lowercase letters. */
static void preview_prefix(char *out, size_t size)
{
    unsigned char r[5];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        for (size_t i = 0; i < sizeof r; i++, x >>= 8)
            r[i] = (unsigned char)x;
    }
    char letters[6];
    for (size_t i = 0; i < sizeof r; i++)
        letters[i] = (char)('a' + r[i] % 26);
    letters[5] = 0;
    snprintf(out, size, "ComfyUI_temp_%s", letters);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KILN_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Where and under which name a batch goes. */
typedef struct save_target {
    char folder[PATH_BYTES];        /* output/temp folder plus subfolder */
    char subfolder[PATH_BYTES];
    char filename[PATH_BYTES];      /* may still hold %batch_num% */
    uint64_t counter;
} save_target_t;

static int resolve_target(kiln_call_t *call, const save_mode_t *mode, int64_t w, int64_t h,
                          save_target_t *t)
{
    char prefix[PATH_BYTES], expanded[PATH_BYTES], why[256] = "";
    if (mode->preview)
        preview_prefix(prefix, sizeof prefix);
    else if (kiln__core_input_cstr(call, "filename_prefix", prefix, sizeof prefix))
        return KILN_ENODE;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (kiln__core_naming_expand(prefix, w, h, &tm, expanded, sizeof expanded))
        return kiln_call_fail(call, "filename_prefix is too long");
    int err = kiln__core_naming_split(expanded, t->subfolder, sizeof t->subfolder, t->filename,
                                      sizeof t->filename, why, sizeof why);
    if (err == KILN_EINVAL)
        return kiln_call_failf(call, "%s (filename_prefix \"%s\")", why, prefix);
    if (err)
        return kiln_call_fail(call, "filename_prefix is too long");
    const char *base = kiln_call_dir(call, mode->dir);
    if (!base || kiln__core_path_join(base, t->subfolder, t->folder, sizeof t->folder))
        return kiln_call_fail(call, "no folder to save images in");
    if (kiln__core_mkdirs(t->folder))
        return kiln_call_failf(call, "cannot create folder %s: %s", t->folder, strerror(errno));
    if (kiln__core_naming_counter(t->folder, t->filename, &t->counter))
        return kiln_call_failf(call, "cannot list folder %s: %s", t->folder, strerror(errno));
    return 0;
}

/* Writes one encoded PNG under the next free counter and reports it in the UI. */
static int store_png(kiln_call_t *call, const save_mode_t *mode, save_target_t *t, int64_t index,
                     const uint8_t *png, size_t png_len)
{
    char num[24], filename[PATH_BYTES], name[PATH_BYTES], path[PATH_BYTES];
    snprintf(num, sizeof num, "%" PRId64, index);
    int fd = -1;
    if (kiln__core_str_replace(t->filename, "%batch_num%", num, filename, sizeof filename) ||
        kiln__core_naming_create(t->folder, filename, "png", &t->counter, &fd, name, sizeof name))
        return kiln_call_failf(call, "cannot create an image file in %s: %s", t->folder,
                               strerror(errno));
    kiln__core_path_join(t->folder, name, path, sizeof path);
    int err = write_all(fd, png, png_len);
    if (close(fd) != 0)
        err = KILN_EIO;
    if (err) {
        int saved = errno;
        unlink(path);
        return kiln_call_failf(call, "cannot write %s: %s", path, strerror(saved));
    }
    t->counter++;
    char jname[2 * PATH_BYTES], jsub[2 * PATH_BYTES], json[5 * PATH_BYTES];
    if (kiln__core_json_string(name, jname, sizeof jname) ||
        kiln__core_json_string(t->subfolder, jsub, sizeof jsub))
        return kiln_call_fail(call, "file name too long");
    snprintf(json, sizeof json, "{\"filename\": %s, \"subfolder\": %s, \"type\": \"%s\"}", jname,
             jsub, mode->type);
    if (kiln_call_ui_append(call, "images", json) != 0)
        return kiln_call_fail(call, "cannot report the saved image");
    return 0;
}

/* The PNG text chunks: the host's metadata entries in its order ("prompt" first). */
static int collect_texts(kiln_call_t *call, kiln__core_png_text_t **texts, size_t *n)
{
    *n = kiln_call_metadata_count(call);
    *texts = NULL;
    if (*n == 0)
        return 0;
    *texts = kiln_malloc(*n * sizeof **texts);
    if (!*texts)
        return kiln_call_fail(call, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        if (kiln_call_metadata_get(call, i, &(*texts)[i].key, &(*texts)[i].text) != 0) {
            kiln_free(*texts);
            return kiln_call_fail(call, "cannot read the image metadata");
        }
    }
    return 0;
}

/* One image of a batch to encode: the float pixels in, the PNG (malloc'd) out. */
typedef struct encode_job {
    const float *src; /* [H, W, C] floats */
    const kiln__core_image_t *img;
    const kiln__core_png_text_t *texts;
    size_t n_texts;
    int level;
    uint8_t *png;
    size_t png_len;
    int err;
} encode_job_t;

static void *encode_one(void *arg)
{
    encode_job_t *j = arg;
    size_t plane = (size_t)(j->img->h * j->img->w * j->img->c);
    uint8_t *pixels = kiln_malloc(plane);
    j->err = pixels ? 0 : KILN_ENOMEM;
    if (!j->err) {
        kiln__core_float_to_u8(j->src, plane, pixels); // [H, W, C] bytes
        j->err = kiln__core_png_encode(pixels, (uint32_t)j->img->w, (uint32_t)j->img->h,
                                       (int)j->img->c, j->texts, j->n_texts, j->level, &j->png,
                                       &j->png_len);
    }
    kiln_free(pixels);
    return NULL;
}

/* Images encoded at once: deflate is the slow part of saving a batch, and the images are
 * independent, so a batch's PNGs are made on up to this many threads (one wave at a
 * time, which bounds the memory held) and then written in order. */
#define ENCODE_WAVE 8

static int save_batch(kiln_call_t *call, const save_mode_t *mode, const kiln__core_image_t *img,
                      save_target_t *t, const kiln__core_png_text_t *texts, size_t n_texts)
{
    size_t plane = (size_t)(img->h * img->w * img->c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t wave = cores > 1 ? (cores < ENCODE_WAVE ? cores : ENCODE_WAVE) : 1;
    encode_job_t jobs[ENCODE_WAVE];
    int err = 0;
    for (int64_t b0 = 0; b0 < img->b && !err; b0 += wave) {
        int64_t n = img->b - b0 < wave ? img->b - b0 : wave;
        pthread_t th[ENCODE_WAVE];
        int started[ENCODE_WAVE] = {0};
        for (int64_t i = 0; i < n; i++) {
            jobs[i] = (encode_job_t){img->data + (size_t)(b0 + i) * plane, img, texts, n_texts,
                                     mode->level, NULL, 0, 0};
            /* the last image of the wave runs here; a thread that cannot start runs here */
            if (i + 1 < n && pthread_create(&th[i], NULL, encode_one, &jobs[i]) == 0)
                started[i] = 1;
            else
                encode_one(&jobs[i]);
        }
        for (int64_t i = 0; i < n; i++)
            if (started[i])
                pthread_join(th[i], NULL);
        for (int64_t i = 0; i < n; i++) {
            if (!err && jobs[i].err)
                err = kiln_call_failf(call, "cannot encode PNG: %s",
                                      jobs[i].err == KILN_ENOMEM ? "out of memory"
                                                                 : "bad metadata or size");
            if (!err)
                err = store_png(call, mode, t, b0 + i, jobs[i].png, jobs[i].png_len);
            free(jobs[i].png);
        }
    }
    return err;
}

static int save_execute(kiln_call_t *call)
{
    const save_mode_t *mode = kiln_call_userdata(call);
    kiln__core_image_t img;
    int err = kiln__core_input_image(call, "images", &img);
    if (err)
        return err;
    save_target_t *t = kiln_malloc(sizeof *t);
    kiln__core_png_text_t *texts = NULL;
    size_t n_texts = 0;
    if (img.c > 4 || img.w > 0x7fffffff || img.h > 0x7fffffff)
        err = kiln_call_failf(call, "cannot save an image with %lld channels as PNG",
                              (long long)img.c);
    else if (!t)
        err = kiln_call_fail(call, "out of memory");
    if (!err)
        err = resolve_target(call, mode, img.w, img.h, t);
    if (!err)
        err = collect_texts(call, &texts, &n_texts);
    if (!err)
        err = save_batch(call, mode, &img, t, texts, n_texts);
    kiln_free(texts);
    kiln_free(t);
    kiln__core_image_release(&img);
    return err;
}

static const kiln_input_def_t save_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "images", .type = "IMAGE", .tooltip = "The images to save."},
    {KILN_INPUT_DEF_INIT, .name = "filename_prefix", .type = "STRING", .has_default = 1,
     .default_string = "ComfyUI",
     .tooltip = "The prefix for the file to save. This may include formatting information "
                "such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values "
                "from nodes."},
    {KILN_INPUT_DEF_INIT, .name = "prompt", .type = "PROMPT", .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "extra_pnginfo", .type = "EXTRA_PNGINFO",
     .section = KILN_INPUT_HIDDEN},
    {0}};

static const kiln_input_def_t preview_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "images", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "prompt", .type = "PROMPT", .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "extra_pnginfo", .type = "EXTRA_PNGINFO",
     .section = KILN_INPUT_HIDDEN},
    {0}};

static const kiln_output_def_t no_outputs[] = {{0}};

const kiln_node_def_t kiln__core_save_image = {
    KILN_NODE_DEF_INIT, .name = "SaveImage", .display_name = "Save Image", .category = "image",
    .description = "Saves the input images to your ComfyUI output directory.",
    .inputs = save_inputs, .outputs = no_outputs, .flags = KILN_NODE_OUTPUT,
    .execute = save_execute, .userdata = (void *)&save_output_mode};

const kiln_node_def_t kiln__core_preview_image = {
    KILN_NODE_DEF_INIT, .name = "PreviewImage", .display_name = "Preview Image",
    .category = "image", .description = "Saves the input images to your ComfyUI output directory.",
    .inputs = preview_inputs, .outputs = no_outputs, .flags = KILN_NODE_OUTPUT,
    .execute = save_execute, .userdata = (void *)&save_temp_mode};
