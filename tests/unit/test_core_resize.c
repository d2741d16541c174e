/* Tests of the core pack's resize methods (nodes/core/resize.h): tiny inputs with values
 * worked out by hand from torch's and PIL's definitions, and reference outputs that
 * torch.nn.functional.interpolate 2.11 and Pillow 12.3 produced for the inputs below
 * (nearest-exact, area and lanczos match bit for bit; bilinear and bicubic round in a
 * different order and match within 1e-6). */
#include <stdint.h>

#include "kiln/error.h"
#include "runner.h"

#include "../../nodes/core/resize.h"

/* Resizes a [1, 1, n, 1] row to [1, 1, out, 1]. */
static void row(kiln__core_resize_method_t m, const float *in, int64_t n, float *out,
                int64_t out_n)
{
    ASSERT_EQ_INT(kiln__core_resize(in, 1, 1, n, 1, NULL, m, out, 1, out_n), 0);
}

static void test_resize_nearest_exact(void)
{
    const float x[4] = {0, 1, 2, 3};
    float y[4];
    row(KILN__CORE_RESIZE_NEAREST_EXACT, x, 4, y, 2);   /* floor((i + .5) * 2) = 1, 3 */
    ASSERT_NEAR(y[0], 1, 0);
    ASSERT_NEAR(y[1], 3, 0);
    row(KILN__CORE_RESIZE_NEAREST_EXACT, x, 2, y, 4);   /* floor((i + .5) / 2) = 0,0,1,1 */
    ASSERT_NEAR(y[0], 0, 0);
    ASSERT_NEAR(y[1], 0, 0);
    ASSERT_NEAR(y[2], 1, 0);
    ASSERT_NEAR(y[3], 1, 0);
    row(KILN__CORE_RESIZE_NEAREST_EXACT, x, 3, y, 2);   /* floor(.75), floor(2.25) */
    ASSERT_NEAR(y[0], 0, 0);
    ASSERT_NEAR(y[1], 2, 0);
}

static void test_resize_bilinear(void)
{
    /* 2x2 -> 4x4, align_corners=False: torch gives these exact values. */
    const float x[4] = {0, 1, 2, 3};
    const float want[16] = {0,   0.25f, 0.75f, 1,    0.5f, 0.75f, 1.25f, 1.5f,
                            1.5f, 1.75f, 2.25f, 2.5f, 2,    2.25f, 2.75f, 3};
    float y[16];
    ASSERT_EQ_INT(kiln__core_resize(x, 1, 2, 2, 1, NULL, KILN__CORE_RESIZE_BILINEAR, y, 4, 4), 0);
    for (int i = 0; i < 16; i++)
        ASSERT_NEAR(y[i], want[i], 0);
    /* 4 -> 2: source positions 0.5 and 2.5, no antialiasing. */
    row(KILN__CORE_RESIZE_BILINEAR, x, 4, y, 2);
    ASSERT_NEAR(y[0], 0.5, 0);
    ASSERT_NEAR(y[1], 2.5, 0);
    /* Channels stay separate: a 1x1 two-channel pixel upscaled keeps both values. */
    const float px[2] = {0.25f, 0.75f};
    ASSERT_EQ_INT(kiln__core_resize(px, 1, 1, 1, 2, NULL, KILN__CORE_RESIZE_BILINEAR, y, 2, 2), 0);
    for (int i = 0; i < 4; i++) {
        ASSERT_NEAR(y[2 * i], 0.25, 0);
        ASSERT_NEAR(y[2 * i + 1], 0.75, 0);
    }
}

static void test_resize_area(void)
{
    const float x[4] = {0, 1, 2, 3};
    float y[4];
    row(KILN__CORE_RESIZE_AREA, x, 4, y, 2);
    ASSERT_NEAR(y[0], 0.5, 0);
    ASSERT_NEAR(y[1], 2.5, 0);
    const float z[3] = {0, 3, 6};   /* windows [0, 2) and [1, 3) */
    row(KILN__CORE_RESIZE_AREA, z, 3, y, 2);
    ASSERT_NEAR(y[0], 1.5, 0);
    ASSERT_NEAR(y[1], 4.5, 0);
    ASSERT_EQ_INT(kiln__core_resize(x, 1, 2, 2, 1, NULL, KILN__CORE_RESIZE_AREA, y, 1, 1), 0);
    ASSERT_NEAR(y[0], 1.5, 0);
}

static void test_resize_bicubic(void)
{
    /* [0, 1] -> 4 with A = -0.75; weights worked out from torch's cubic convolution,
     * indices clamped at the borders. */
    const float x[2] = {0, 1};
    float y[4];
    row(KILN__CORE_RESIZE_BICUBIC, x, 2, y, 4);
    ASSERT_NEAR(y[0], -0.10546875, 1e-7);
    ASSERT_NEAR(y[1], 0.2265625, 1e-7);
    ASSERT_NEAR(y[2], 0.7734375, 1e-7);
    ASSERT_NEAR(y[3], 1.10546875, 1e-7);
    /* Same size is the identity. */
    const float r[3] = {0.1f, 0.7f, 0.3f};
    row(KILN__CORE_RESIZE_BICUBIC, r, 3, y, 3);
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(y[i], r[i], 0);
}

static void test_resize_lanczos(void)
{
    /* 2 -> 1: both taps weigh exactly 2^21 of 2^22; (10 + 21 + 1) / 2 = 16. */
    const float x[2] = {10.0f / 255.0f, 21.0f / 255.0f};
    float y[4];
    row(KILN__CORE_RESIZE_LANCZOS, x, 2, y, 1);
    ASSERT_NEAR(y[0], 16.0f / 255.0f, 0);
    /* The image is quantized as ComfyUI does: same size gives trunc(255 x) / 255. */
    const float q[2] = {0.5f, 0.999f};
    row(KILN__CORE_RESIZE_LANCZOS, q, 2, y, 2);
    ASSERT_NEAR(y[0], 127.0f / 255.0f, 0);
    ASSERT_NEAR(y[1], 254.0f / 255.0f, 0);
    /* A constant stays constant whatever the scale. */
    float c[5 * 3];
    for (int i = 0; i < 15; i++)
        c[i] = 200.0f / 255.0f + 1e-5f;
    float out[7 * 2];
    ASSERT_EQ_INT(kiln__core_resize(c, 1, 3, 5, 1, NULL, KILN__CORE_RESIZE_LANCZOS, out, 2, 7), 0);
    for (int i = 0; i < 14; i++)
        ASSERT_NEAR(out[i], 200.0f / 255.0f, 0);
    /* RGBA is premultiplied: (255,127,63,255) and a transparent pixel average to
     * (128,64,32,128), which un-premultiplies to (255,127,63,128). */
    const float rgba[8] = {1.0f, 0.5f, 0.25f, 1.0f, 0, 0, 0, 0};
    float o[4];
    ASSERT_EQ_INT(kiln__core_resize(rgba, 1, 1, 2, 4, NULL, KILN__CORE_RESIZE_LANCZOS, o, 1, 1), 0);
    ASSERT_NEAR(o[0], 255.0f / 255.0f, 0);
    ASSERT_NEAR(o[1], 127.0f / 255.0f, 0);
    ASSERT_NEAR(o[2], 63.0f / 255.0f, 0);
    ASSERT_NEAR(o[3], 128.0f / 255.0f, 0);
}

static void test_center_crop_and_resize_with_crop(void)
{
    kiln__core_rect_t r;
    kiln__core_center_crop(4, 8, 2, 2, &r);     /* x = round((8 - 4) / 2) = 2 */
    ASSERT_EQ_INT(r.x, 2);
    ASSERT_EQ_INT(r.y, 0);
    ASSERT_EQ_INT(r.w, 4);
    ASSERT_EQ_INT(r.h, 4);
    kiln__core_center_crop(5, 2, 1, 1, &r);     /* y = round(1.5) = 2, half to even */
    ASSERT_EQ_INT(r.y, 2);
    ASSERT_EQ_INT(r.h, 1);
    kiln__core_center_crop(6, 2, 1, 1, &r);     /* y = round(2.0) */
    ASSERT_EQ_INT(r.y, 2);
    ASSERT_EQ_INT(r.h, 2);
    kiln__core_center_crop(3, 3, 7, 7, &r);     /* same aspect: no crop */
    ASSERT_EQ_INT(r.x, 0);
    ASSERT_EQ_INT(r.y, 0);
    ASSERT_EQ_INT(r.w, 3);
    const float x[4] = {0, 1, 2, 3};
    float y[2];
    kiln__core_center_crop(1, 4, 1, 2, &r);     /* keeps columns 1..2 */
    ASSERT_EQ_INT(kiln__core_resize(x, 1, 1, 4, 1, &r, KILN__CORE_RESIZE_NEAREST_EXACT, y, 1, 2),
                  0);
    ASSERT_NEAR(y[0], 1, 0);
    ASSERT_NEAR(y[1], 2, 0);
    kiln__core_rect_t bad = {0, 3, 1, 2};
    ASSERT_EQ_INT(kiln__core_resize(x, 1, 1, 4, 1, &bad, KILN__CORE_RESIZE_AREA, y, 1, 2),
                  KILN_EINVAL);
    kiln__core_resize_method_t m;
    ASSERT_EQ_INT(kiln__core_resize_method_parse("bicubic", &m), 0);
    ASSERT_EQ_INT(m, KILN__CORE_RESIZE_BICUBIC);
    ASSERT_EQ_INT(kiln__core_resize_method_parse("bislerp", &m), KILN_EINVAL);
}

/* ---- reference outputs ---------------------------------------------------------------- */

/* The reference inputs: byte k(y, x, c) = (37x + 91y + 53c + 13xy) mod 256, stored as the
 * float32 of (k + 0.5) / 255 so that ComfyUI's 8-bit quantization gives k back. */
static float *ref_input(int h, int w, int c)
{
    float *x = malloc((size_t)(h * w * c) * sizeof *x);
    ASSERT(x);
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++)
            for (int ch = 0; ch < c; ch++) {
                int k = (i * 37 + y * 91 + ch * 53 + i * y * 13) % 256;
                x[(y * w + i) * c + ch] = (float)((k + 0.5) / 255.0);
            }
    return x;
}

static const float ref_nearest[36] = {
    0.00196078443f, 0.292156875f, 0.582352936f, 0.872548997f, 0.00196078443f, 0.292156875f,
    0.582352936f, 0.872548997f, 0.358823538f, 0.750980377f, 0.139215693f, 0.531372547f,
    0.358823538f, 0.750980377f, 0.139215693f, 0.531372547f, 0.715686262f, 0.205882356f,
    0.699999988f, 0.190196082f, 0.0686274543f, 0.664705873f, 0.25686276f, 0.852941155f,
    0.0686274543f, 0.664705873f, 0.25686276f, 0.852941155f, 0.425490201f, 0.119607843f,
    0.81764704f, 0.511764705f, 0.425490201f, 0.119607843f, 0.81764704f, 0.511764705f};
static const float ref_bilinear[36] = {
    0.0563725494f, 0.310294122f, 0.56421566f, 0.818137228f, 0.181699365f, 0.465359479f,
    0.456209123f, 0.698039174f, 0.390577376f, 0.723801792f, 0.276198238f, 0.49787581f,
    0.599455357f, 0.536056638f, 0.430827916f, 0.465032667f, 0.808333278f, 0.236764714f,
    0.669117689f, 0.474019587f, 0.459476948f, 0.495207101f, 0.489106655f, 0.622440159f,
    0.222167775f, 0.642102361f, 0.392756015f, 0.701143742f, 0.43104589f, 0.342810303f,
    0.631045878f, 0.500980258f, 0.556372523f, 0.163235292f, 0.774019599f, 0.380882382f};
static const float ref_area[36] = {
    0.0745098069f, 0.292156875f, 0.582352936f, 0.799999952f, 0.265686274f, 0.521568596f,
    0.528104544f, 0.616666675f, 0.456862748f, 0.750980377f, 0.473856211f, 0.433333337f,
    0.648039222f, 0.645751655f, 0.586928129f, 0.500980377f, 0.839215636f, 0.540522873f,
    0.699999988f, 0.568627417f, 0.528431356f, 0.602614403f, 0.645751655f, 0.636274457f,
    0.217647061f, 0.664705873f, 0.591503263f, 0.703921556f, 0.40882352f, 0.55947715f,
    0.53725487f, 0.520588219f, 0.600000024f, 0.454248339f, 0.483006507f, 0.337254912f};
static const float ref_bicubic[36] = {
    0.00718911598f, 0.268094212f, 0.593219757f, 0.865739346f, 0.137417406f, 0.500983179f,
    0.42426163f, 0.717384279f, 0.353535235f, 0.790690005f, 0.213969857f, 0.506009102f,
    0.703965604f, 0.526862681f, 0.400216043f, 0.415900081f, 0.854605138f, 0.174839139f,
    0.658984363f, 0.479218334f, 0.452900052f, 0.496700972f, 0.447376609f, 0.683964252f,
    0.150666401f, 0.703780293f, 0.337201446f, 0.74519968f, 0.417735219f, 0.330893397f,
    0.648963034f, 0.491678447f, 0.638595343f, 0.043083474f, 0.884138644f, 0.300241172f};
static const uint8_t ref_lanczos_5x7x3[108] = {
    7, 52, 100, 57, 117, 210, 153, 238, 218, 222, 109, 27, 29, 100, 160, 123, 146, 157, 127,
    166, 190, 176, 141, 106, 87, 170, 224, 208, 178, 90, 100, 73, 138, 108, 174, 213, 188,
    184, 150, 168, 147, 127, 135, 105, 90, 97, 132, 196, 213, 142, 52, 95, 103, 181, 180, 188,
    93, 141, 70, 113, 112, 109, 95, 149, 123, 116, 158, 169, 142, 176, 72, 116, 41, 124, 165,
    190, 158, 63, 127, 99, 172, 164, 111, 163, 104, 174, 147, 126, 156, 112, 138, 65, 144,
    115, 130, 181, 164, 207, 122, 74, 149, 158, 152, 53, 117, 82, 137, 187};
static const uint8_t ref_lanczos_7x9x4[260] = {
    20, 67, 118, 196, 53, 116, 191, 168, 255, 255, 255, 3, 178, 66, 50, 126, 9, 68, 137, 193,
    31, 98, 152, 184, 102, 124, 153, 135, 118, 147, 162, 88, 149, 112, 94, 116, 64, 71, 117,
    167, 68, 151, 202, 160, 231, 141, 57, 88, 86, 91, 155, 204, 95, 177, 175, 109, 191, 87,
    67, 117, 166, 168, 170, 127, 187, 114, 72, 91, 108, 91, 128, 184, 81, 145, 183, 135, 255,
    165, 0, 63, 215, 121, 78, 124, 81, 91, 154, 134, 221, 149, 49, 77, 105, 80, 141, 164, 148,
    239, 53, 48, 115, 106, 122, 179, 121, 105, 145, 147, 188, 149, 110, 92, 124, 61, 123, 149,
    27, 154, 127, 66, 50, 118, 167, 206, 184, 129, 108, 134, 114, 102, 160, 154, 137, 67, 119,
    113, 54, 85, 140, 107, 61, 144, 156, 129, 126, 132, 103, 123, 102, 55, 140, 129, 128, 68,
    128, 97, 84, 75, 132, 148, 170, 218, 60, 63, 63, 114, 129, 116, 126, 55, 110, 115, 89, 96,
    139, 108, 122, 72, 127, 154, 128, 199, 85, 101, 120, 90, 153, 116, 140, 123, 143, 181, 58,
    149, 141, 130, 186, 52, 131, 122, 79, 151, 128, 151, 144, 76, 160, 113, 159, 142, 153,
    186, 69, 143, 132, 135, 194, 83, 137, 113, 58, 120, 148, 144, 73, 78, 147, 104, 212, 101,
    126, 103, 118, 82, 120, 114, 131, 138, 133, 147, 46, 96, 162, 132, 13, 85, 132, 98, 255,
    0, 34, 44, 164, 25, 110, 99, 100, 158, 131, 172};
static const uint8_t ref_lanczos_20x30x3[72] = {
    129, 134, 136, 127, 128, 121, 119, 125, 114, 118, 124, 107, 137, 131, 147, 149, 126, 134,
    132, 137, 129, 128, 131, 138, 139, 111, 139, 134, 121, 132, 143, 125, 138, 143, 115, 134,
    113, 124, 127, 117, 127, 128, 130, 124, 122, 125, 121, 123, 124, 134, 132, 103, 114, 148,
    128, 112, 120, 137, 136, 126, 116, 135, 130, 86, 94, 133, 105, 127, 137, 136, 124, 116};

static void test_resize_matches_torch(void)
{
    static const struct {
        kiln__core_resize_method_t method;
        const float *want;
        double tol;
    } cases[4] = {{KILN__CORE_RESIZE_NEAREST_EXACT, ref_nearest, 0},
                  {KILN__CORE_RESIZE_AREA, ref_area, 0},
                  {KILN__CORE_RESIZE_BILINEAR, ref_bilinear, 1e-6},
                  {KILN__CORE_RESIZE_BICUBIC, ref_bicubic, 1e-6}};
    float *x = ref_input(5, 7, 1);
    for (int k = 0; k < 4; k++) {
        float y[36];
        ASSERT_EQ_INT(kiln__core_resize(x, 1, 5, 7, 1, NULL, cases[k].method, y, 9, 4), 0);
        for (int i = 0; i < 36; i++)
            ASSERT_NEAR(y[i], cases[k].want[i], cases[k].tol);
    }
    free(x);
}

static void lanczos_case(int h, int w, int c, int oh, int ow, const uint8_t *want)
{
    float *x = ref_input(h, w, c);
    float *y = malloc((size_t)(oh * ow * c) * sizeof *y);
    ASSERT(y);
    ASSERT_EQ_INT(kiln__core_resize(x, 1, h, w, c, NULL, KILN__CORE_RESIZE_LANCZOS, y, oh, ow), 0);
    for (int i = 0; i < oh * ow * c; i++)
        ASSERT_NEAR(y[i], want[i] / 255.0f, 0);
    free(x);
    free(y);
}

static void test_resize_lanczos_matches_pil(void)
{
    lanczos_case(5, 7, 3, 9, 4, ref_lanczos_5x7x3);     /* up in H, down in W */
    lanczos_case(7, 9, 4, 13, 5, ref_lanczos_7x9x4);    /* RGBA: premultiplied */
    lanczos_case(20, 30, 3, 6, 4, ref_lanczos_20x30x3); /* strong downscale */
}

KILN_TEST_MAIN(TEST(test_resize_nearest_exact), TEST(test_resize_bilinear),
               TEST(test_resize_area), TEST(test_resize_bicubic), TEST(test_resize_lanczos),
               TEST(test_center_crop_and_resize_with_crop), TEST(test_resize_matches_torch),
               TEST(test_resize_lanczos_matches_pil))
