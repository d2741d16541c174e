/* safetensors: the sd15-tiny fixture checkpoint read in place (counts, a known tensor's
 * dtype, shape, offsets and bits, the int64 position ids, metadata, zero-copy lifetime),
 * write/read round trips of every dtype and of strided views, and fault sweeps: hand-made
 * malformed headers, truncation at every 97th byte, and byte mutations of a header. Each
 * bad file must fail with KILN_EPARSE and a message, never crash (run under ASan). */
#include <fcntl.h>
#include <kiln/error.h>
#include <kiln/tensor.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner.h"
#include "runtime/convert.h"
#include "runtime/safetensors.h"
#include "runtime/tensor_int.h"

#define FIXTURES KILN_SHARED_DIR "/fixtures/sd15-tiny/"
#define CKPT FIXTURES "checkpoint.safetensors"

static char path_buf[1024];

static const char *tmp_path(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", kiln_test_tmpdir(), name);
    return path_buf;
}

static kiln__safetensors_t *open_ok(const char *path)
{
    kiln__safetensors_t *f = NULL;
    char err[512] = "";
    int rc = kiln__safetensors_open(path, &f, err, sizeof err);
    if (rc < 0)
        kiln_test_fail(__FILE__, __LINE__, "open %s: %s (%s)", path, err, kiln_err_name(rc));
    return f;
}

static void test_fixture_checkpoint(void)
{
    kiln__safetensors_t *f = open_ok(CKPT);
    ASSERT_EQ_INT(kiln__safetensors_count(f), 965);
    size_t unet = 0, vae = 0, clip = 0;
    for (size_t i = 0; i < kiln__safetensors_count(f); i++) {
        const char *name = kiln__safetensors_info_at(f, i)->name;
        unet += strncmp(name, "model.diffusion_model.", 22) == 0;
        vae += strncmp(name, "first_stage_model.", 18) == 0;
        clip += strncmp(name, "cond_stage_model.transformer.", 29) == 0;
        ASSERT(kiln__safetensors_find(f, name) == kiln__safetensors_info_at(f, i));
    }
    ASSERT_EQ_INT(unet, 684);
    ASSERT_EQ_INT(vae, 244);
    ASSERT_EQ_INT(clip, 37);
    ASSERT(kiln__safetensors_info_at(f, 965) == NULL);

    const char *name = "model.diffusion_model.input_blocks.0.0.weight";
    const kiln__safetensors_info_t *info = kiln__safetensors_find(f, name);
    ASSERT(info != NULL);
    ASSERT_EQ_INT(info->dtype, KILN_DTYPE_F32);
    ASSERT_EQ_INT(info->ndim, 4);
    ASSERT_EQ_INT(info->shape[0], 32);
    ASSERT_EQ_INT(info->shape[1], 4);
    ASSERT_EQ_INT(info->shape[2], 3);
    ASSERT_EQ_INT(info->shape[3], 3);
    ASSERT_EQ_INT(info->begin, 12002948);
    ASSERT_EQ_INT(info->end, 12007556);
    ASSERT_EQ_INT(info->file_offset, 8 + 125856 + 12002948);

    kiln_tensor_t *w = NULL;
    char err[256];
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, name, &w, err, sizeof err), 0);
    ASSERT_EQ_INT(kiln_tensor_numel(w), 32 * 4 * 3 * 3);
    ASSERT(kiln_tensor_is_readonly(w));                  /* a view of the mapping */
    ASSERT(kiln_tensor_is_contiguous(w));
    const uint32_t *bits = kiln_tensor_data(w);
    ASSERT_EQ_INT(bits[0], 0xbdb5b15bu);
    ASSERT_EQ_INT(bits[1], 0x3d9ce07eu);
    ASSERT_EQ_INT(bits[2], 0xbd483540u);
    ASSERT_EQ_INT(bits[3], 0x3cd894abu);

    ASSERT_STR_EQ(kiln__safetensors_metadata(f, "format"), "pt");
    ASSERT_STR_EQ(kiln__safetensors_metadata(f, "kiln_fixture"), "sd15-tiny");
    ASSERT(kiln__safetensors_metadata(f, "nope") == NULL);
    ASSERT_EQ_INT(kiln__safetensors_metadata_count(f), 6);
    const char *k, *v;
    ASSERT_EQ_INT(kiln__safetensors_metadata_at(f, 6, &k, &v), KILN_ERANGE);

    kiln_tensor_t *missing = NULL;
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, "model.nope", &missing, err, sizeof err),
                  KILN_ENOTFOUND);
    ASSERT_STR_CONTAINS(err, "model.nope");
    kiln__safetensors_close(f);
    /* The tensor keeps the mapping alive after the file is closed. */
    ASSERT_EQ_INT(bits[3], 0x3cd894abu);
    kiln_tensor_release(w);
}

static void test_fixture_position_ids(void)
{
    kiln__safetensors_t *f = open_ok(CKPT);
    const char *name = "cond_stage_model.transformer.text_model.embeddings.position_ids";
    kiln_tensor_t *ids = NULL, *fl = NULL, *bias = NULL, *h = NULL;
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, name, &ids, NULL, 0), 0);
    ASSERT_EQ_INT(kiln_tensor_dtype(ids), KILN_DTYPE_I64);
    ASSERT_EQ_INT(kiln_tensor_ndim(ids), 2);
    ASSERT_EQ_INT(kiln_tensor_dim(ids, 0), 1);
    ASSERT_EQ_INT(kiln_tensor_dim(ids, 1), 77);
    const int64_t *p = kiln_tensor_data(ids);
    for (int i = 0; i < 77; i++)
        ASSERT_EQ_INT(p[i], i);
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(f, name, KILN_DTYPE_F32, &fl, NULL, 0), 0);
    ASSERT(!kiln_tensor_is_readonly(fl));
    for (int i = 0; i < 77; i++)
        ASSERT_NEAR(((float *)kiln_tensor_data(fl))[i], i, 0);
    /* F32 weights converted on load; same dtype gives the zero-copy view. */
    const char *bname = "first_stage_model.decoder.conv_in.bias";
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(f, bname, KILN_DTYPE_F32, &bias, NULL, 0), 0);
    ASSERT(kiln_tensor_is_readonly(bias));
    ASSERT_NEAR(((float *)kiln_tensor_data(bias))[0], 0.08505183458328247, 0);
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(f, bname, KILN_DTYPE_F16, &h, NULL, 0), 0);
    ASSERT_EQ_INT(kiln_tensor_dim(h, 0), 64);
    for (int i = 0; i < 64; i++)
        ASSERT_EQ_INT(((uint16_t *)kiln_tensor_data(h))[i],
                      kiln__f32_to_f16(((float *)kiln_tensor_data(bias))[i]));
    kiln_tensor_t *bad = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(f, bname, KILN_DTYPE_I32, &bad, err, sizeof err),
                  KILN_EUNSUPPORTED);
    ASSERT_STR_CONTAINS(err, "cannot convert F32 to I32");
    kiln__safetensors_close(f);
    kiln_tensor_release(h);
    kiln_tensor_release(bias);
    kiln_tensor_release(fl);
    kiln_tensor_release(ids);
}

static void test_fixture_others(void)
{
    static const struct {
        const char *file;
        size_t count;
    } files[] = {{"clip", 30}, {"noise", 26}, {"samples", 35}, {"unet", 17}, {"vae", 7}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, FIXTURES "%s.safetensors", files[i].file);
        kiln__safetensors_t *f = open_ok(path);
        ASSERT_EQ_INT(kiln__safetensors_count(f), files[i].count);
        ASSERT(kiln__safetensors_metadata(f, "kiln") != NULL);
        kiln__safetensors_close(f);
    }
    kiln__safetensors_t *f = open_ok(FIXTURES "samples.safetensors");
    kiln_tensor_t *img = NULL;
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, "euler_normal_image_uint8", &img, NULL, 0), 0);
    ASSERT_EQ_INT(kiln_tensor_dtype(img), KILN_DTYPE_U8);
    ASSERT_EQ_INT(kiln_tensor_dim(img, 3), 3);
    const uint8_t *px = kiln_tensor_data(img);
    ASSERT_EQ_INT(px[0] * 1000000 + px[1] * 1000 + px[2], 121114122);
    kiln_tensor_release(img);
    kiln__safetensors_close(f);
}

static void fill(kiln_tensor_t *t, int seed)
{
    uint8_t *p = kiln_tensor_data(t);
    for (size_t i = 0; i < kiln_tensor_nbytes(t); i++)
        p[i] = (uint8_t)(i * 31 + (size_t)seed * 7 + 1);
}

static void test_round_trip(void)
{
    static const kiln_dtype_t dtypes[] = {
        KILN_DTYPE_U8,  KILN_DTYPE_F32, KILN_DTYPE_F16, KILN_DTYPE_BF16, KILN_DTYPE_I64,
        KILN_DTYPE_I32, KILN_DTYPE_I16, KILN_DTYPE_I8,  KILN_DTYPE_F64,  KILN_DTYPE_BOOL};
    enum { ND = sizeof dtypes / sizeof dtypes[0] };
    kiln_tensor_t *ts[ND + 3];
    const char *names[ND + 3] = {"u8", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "f64",
                                 "bool", "scalar", "empty", "nhwc_as_nchw"};
    for (int i = 0; i < ND; i++) {
        ts[i] = kiln_tensor_new(dtypes[i], 2, (int64_t[]){3, 5 + i});
        fill(ts[i], i);
    }
    uint8_t *b = kiln_tensor_data(ts[ND - 1]);
    for (int i = 0; i < 3 * (5 + ND - 1); i++)
        b[i] &= 1;
    ts[ND] = kiln_tensor_new(KILN_DTYPE_F32, 0, NULL);
    *(float *)kiln_tensor_data(ts[ND]) = 2.5f;
    ts[ND + 1] = kiln_tensor_new(KILN_DTYPE_F16, 2, (int64_t[]){0, 7});
    kiln_tensor_t *nhwc = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){1, 2, 3, 4});
    fill(nhwc, 99);
    ASSERT_EQ_INT(kiln_tensor_permute(nhwc, (int[]){0, 3, 1, 2}, &ts[ND + 2]), 0);
    const char *meta[] = {"format", "pt", "note", "caf\xc3\xa9 \"quoted\"", NULL};
    char err[256] = "";
    const char *path = tmp_path("rt.safetensors");
    int rc = kiln__safetensors_write(path, names, ts, ND + 3, meta, err, sizeof err);
    if (rc < 0)
        kiln_test_fail(__FILE__, __LINE__, "write: %s", err);

    size_t len = 0;
    unsigned char *raw = (unsigned char *)kiln_test_read_file(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    ASSERT_EQ_INT(hlen % 8, 0);
    free(raw);

    kiln__safetensors_t *f = open_ok(path);
    ASSERT_EQ_INT(kiln__safetensors_count(f), ND + 3);
    ASSERT_STR_EQ(kiln__safetensors_metadata(f, "note"), "caf\xc3\xa9 \"quoted\"");
    for (int i = 0; i < ND + 3; i++) {
        ASSERT_STR_EQ(kiln__safetensors_info_at(f, i)->name, names[i]);  /* header order */
        kiln_tensor_t *t = NULL, *want = NULL;
        ASSERT_EQ_INT(kiln__safetensors_tensor(f, names[i], &t, err, sizeof err), 0);
        ASSERT(kiln_tensor_is_readonly(t));              /* aligned, so never copied */
        ASSERT_EQ_INT(kiln_tensor_dtype(t), kiln_tensor_dtype(ts[i]));
        ASSERT_EQ_INT(kiln_tensor_ndim(t), kiln_tensor_ndim(ts[i]));
        for (int d = 0; d < kiln_tensor_ndim(t); d++)
            ASSERT_EQ_INT(kiln_tensor_dim(t, d), kiln_tensor_dim(ts[i], d));
        ASSERT_EQ_INT(kiln_tensor_contiguous(ts[i], &want), 0);
        ASSERT(memcmp(kiln_tensor_data(t), kiln_tensor_data(want), kiln_tensor_nbytes(t)) == 0);
        kiln_tensor_release(want);
        kiln_tensor_release(t);
    }
    kiln__safetensors_close(f);
    /* Argument errors. */
    const char *dup[2] = {"a", "a"};
    kiln_tensor_t *two[2] = {ts[0], ts[1]};
    ASSERT_EQ_INT(kiln__safetensors_write(path, dup, two, 2, NULL, err, sizeof err), KILN_EINVAL);
    ASSERT_STR_CONTAINS(err, "twice");
    const char *reserved[1] = {"__metadata__"};
    ASSERT_EQ_INT(kiln__safetensors_write(path, reserved, two, 1, NULL, err, sizeof err),
                  KILN_EINVAL);
    const char *odd[] = {"k", NULL};
    ASSERT_EQ_INT(kiln__safetensors_write(path, names, two, 1, odd, err, sizeof err), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__safetensors_write("/nonexistent-dir/x.safetensors", names, two, 1, NULL,
                                          err, sizeof err), KILN_EIO);
    for (int i = 0; i < ND + 3; i++)
        kiln_tensor_release(ts[i]);
    kiln_tensor_release(nhwc);
}

/* A file made of a header length, a header text and `data_len` bytes of data. */
static void write_st(const char *path, uint64_t hlen, const char *header, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    ASSERT(fp != NULL);
    for (int i = 0; i < 8; i++)
        fputc((int)(hlen >> (8 * i)) & 0xff, fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < data_len; i++)
        fputc((int)i, fp);
    fclose(fp);
}

static void expect_parse_error(const char *path, const char *needle, int line)
{
    kiln__safetensors_t *f = NULL;
    char err[512] = "";
    int rc = kiln__safetensors_open(path, &f, err, sizeof err);
    if (rc != KILN_EPARSE || f != NULL || !strstr(err, needle) || !strstr(err, path))
        kiln_test_fail(__FILE__, line, "expected a parse error with \"%s\", got %s: %s", needle,
                       kiln_err_name(rc), err);
}

static void test_malformed_headers(void)
{
    /* {header, data bytes, expected message part}; the header length is the text's. */
    static const struct {
        const char *header;
        size_t data;
        const char *needle;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]", 8, "not valid JSON"},
        {"not json", 0, "not valid JSON"},
        {"", 0, "not valid JSON"},
        {"[]", 0, "not a JSON object"},
        {"\"str\"", 0, "not a JSON object"},
        {"{\"a\":5}", 0, "entry is not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" is missing"},
        {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" is missing"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\\u0000\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "F8_E4M3 is not supported"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "\"shape\" is missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4, "not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "dimension 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4, "dimension 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,4]}}", 4,
         "dimension 1"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,4]}}", 4,
         "dimension 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
         "\"data_offsets\":[0,4]}}", 4, "overflows"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952,2],\"data_offsets\":[0,8]}}", 8,
         "bytes of data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "7 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "\"data_offsets\" must be"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "not inside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 7, "not inside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "bytes of data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap"},
        {"{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]},"
         "\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 20, "overlap"},
        {"{\"__metadata__\":[\"x\"]}", 0, "__metadata__ is not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string"},
        {"{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, "NUL byte"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "NUL byte"},
    };
    const char *path = tmp_path("bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(path, strlen(cases[i].header), cases[i].header, cases[i].data);
        expect_parse_error(path, cases[i].needle, __LINE__);
    }
    /* Header lengths: over the limit, past the end, the largest u64, and a short file. */
    const char *ok = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
    write_st(path, KILN__SAFETENSORS_MAX_HEADER + 1ull, ok, 2);
    expect_parse_error(path, "over the 100000000-byte limit", __LINE__);
    write_st(path, strlen(ok) + 3, ok, 2);
    expect_parse_error(path, "past the end", __LINE__);
    write_st(path, UINT64_MAX, ok, 2);
    expect_parse_error(path, "header length", __LINE__);
    ASSERT_EQ_INT(kiln_test_write_file(path, "\x05\0\0", 3), 0);
    expect_parse_error(path, "too short", __LINE__);
    ASSERT_EQ_INT(kiln_test_write_file(path, "", 0), 0);
    expect_parse_error(path, "too short", __LINE__);
    /* Control: the same header with a correct length opens, as do padding and gaps. */
    write_st(path, strlen(ok), ok, 2);
    kiln__safetensors_close(open_ok(path));
    const char *padded = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}    ";
    write_st(path, strlen(padded), padded, 6);
    kiln__safetensors_close(open_ok(path));
    /* Other failures: a missing file and a directory. */
    kiln__safetensors_t *f = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(kiln__safetensors_open(tmp_path("missing.safetensors"), &f, err, sizeof err),
                  KILN_ENOTFOUND);
    ASSERT_STR_CONTAINS(err, "missing.safetensors");
    ASSERT_EQ_INT(kiln__safetensors_open(kiln_test_tmpdir(), &f, err, sizeof err), KILN_EIO);
    ASSERT_STR_CONTAINS(err, "not a regular file");
    ASSERT(f == NULL);
}

/* A misaligned tensor (odd header length, no padding) is copied out, not viewed. */
static void test_misaligned_copy(void)
{
    char h[128];
    snprintf(h, sizeof h, "%s", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}");
    while (strlen(h) % 8)
        strcat(h, " ");                      /* the data region starts 8-aligned... */
    const char *path = tmp_path("odd.safetensors");
    write_st(path, strlen(h), h, 9);         /* ...so the tensor at offset 1 is not */
    kiln__safetensors_t *f = open_ok(path);
    kiln_tensor_t *t = NULL;
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, "a", &t, NULL, 0), 0);
    ASSERT(!kiln_tensor_is_readonly(t));
    ASSERT_EQ_INT((uintptr_t)kiln_tensor_data(t) % 4, 0);
    uint32_t v[2];
    memcpy(v, kiln_tensor_data(t), 8);
    ASSERT_EQ_INT(v[0], 0x04030201u);
    ASSERT_EQ_INT(v[1], 0x08070605u);
    kiln_tensor_release(t);
    kiln__safetensors_close(f);
}

/* Opens `path` at every length from its size down to 0 in steps of 97 bytes; every
 * shorter file must fail cleanly. Returns the number of lengths tried. */
static int truncation_sweep(const char *path)
{
    struct stat st;
    ASSERT_EQ_INT(stat(path, &st), 0);
    int tried = 0;
    for (off_t len = st.st_size - 1; len >= 0; len -= 97) {
        ASSERT_EQ_INT(truncate(path, len), 0);
        kiln__safetensors_t *f = NULL;
        char err[512] = "";
        int rc = kiln__safetensors_open(path, &f, err, sizeof err);
        if (rc != KILN_EPARSE || !err[0])
            kiln_test_fail(__FILE__, __LINE__, "truncated to %lld: %s %s", (long long)len,
                           kiln_err_name(rc), err);
        tried++;
    }
    return tried;
}

static void test_truncation_sweep(void)
{
    /* A written file with several tensors... */
    kiln_tensor_t *ts[3] = {kiln_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){16, 16}),
                            kiln_tensor_new(KILN_DTYPE_F16, 1, (int64_t[]){300}),
                            kiln_tensor_new(KILN_DTYPE_I64, 1, (int64_t[]){40})};
    const char *names[3] = {"w", "h", "ids"};
    const char *path = tmp_path("trunc.safetensors");
    ASSERT_EQ_INT(kiln__safetensors_write(path, names, ts, 3, NULL, NULL, 0), 0);
    ASSERT(truncation_sweep(path) > 20);
    for (int i = 0; i < 3; i++)
        kiln_tensor_release(ts[i]);
    /* ...and a copy of a fixture. */
    size_t len = 0;
    char *bytes = kiln_test_read_file(FIXTURES "vae.safetensors", &len);
    ASSERT(bytes != NULL);
    path = tmp_path("vae_copy.safetensors");
    ASSERT_EQ_INT(kiln_test_write_file(path, bytes, len), 0);
    free(bytes);
    ASSERT_EQ_INT(truncation_sweep(path), (int)((len - 1) / 97 + 1));
}

/* Replaces each header byte in turn with characters that change JSON structure; whatever
 * the result, open must either succeed with in-bounds tensors or fail with a message. */
static void test_header_mutations(void)
{
    kiln_tensor_t *ts[2] = {kiln_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){2, 3}),
                            kiln_tensor_new(KILN_DTYPE_U8, 1, (int64_t[]){5})};
    const char *names[2] = {"a", "b"};
    const char *meta[] = {"k", "v", NULL};
    const char *path = tmp_path("mut.safetensors");
    ASSERT_EQ_INT(kiln__safetensors_write(path, names, ts, 2, meta, NULL, 0), 0);
    kiln_tensor_release(ts[0]);
    kiln_tensor_release(ts[1]);
    size_t len = 0;
    unsigned char *orig = (unsigned char *)kiln_test_read_file(path, &len);
    size_t hlen = orig[0] | (size_t)orig[1] << 8;
    int fd = open(path, O_WRONLY);
    ASSERT(fd >= 0);
    static const unsigned char subst[] = {'"', '{', '}', '[', ']', ',', ':', '9', '-', ' ',
                                          0x00, 0xff, '\\', 'e'};
    int opened = 0, failed = 0;
    for (size_t pos = 0; pos < 8 + hlen; pos++) {
        for (size_t s = 0; s < sizeof subst; s++) {
            if (subst[s] == orig[pos])
                continue;
            ASSERT_EQ_INT(pwrite(fd, &subst[s], 1, (off_t)pos), 1);
            kiln__safetensors_t *f = NULL;
            char err[512] = "";
            int rc = kiln__safetensors_open(path, &f, err, sizeof err);
            if (rc == 0) {
                opened++;
                for (size_t i = 0; i < kiln__safetensors_count(f); i++) {
                    const kiln__safetensors_info_t *info = kiln__safetensors_info_at(f, i);
                    ASSERT(info->end <= len - 8 - hlen);
                    kiln_tensor_t *t = NULL;
                    ASSERT_EQ_INT(kiln__safetensors_tensor(f, info->name, &t, NULL, 0), 0);
                    kiln_tensor_release(t);
                }
                kiln__safetensors_close(f);
            } else {
                failed++;
                if (rc != KILN_EPARSE || !err[0])
                    kiln_test_fail(__FILE__, __LINE__, "byte %zu = 0x%02x: %s %s", pos,
                                   subst[s], kiln_err_name(rc), err);
            }
        }
        ASSERT_EQ_INT(pwrite(fd, &orig[pos], 1, (off_t)pos), 1);
    }
    close(fd);
    free(orig);
    ASSERT(failed > 500);
    ASSERT(opened > 0);      /* e.g. a digit changed inside a metadata string */
}

KILN_TEST_MAIN(TEST(test_fixture_checkpoint), TEST(test_fixture_position_ids),
               TEST(test_fixture_others), TEST(test_round_trip), TEST(test_malformed_headers),
               TEST(test_misaligned_copy), TEST(test_truncation_sweep),
               TEST_TIMEOUT(test_header_mutations, 60))
