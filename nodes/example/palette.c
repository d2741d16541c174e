/* A custom socket type passed between two nodes of the example pack:
 *   ExampleMakePalette  colors:STRING -> EXAMPLE_PALETTE, count:INT
 *   ExampleApplyPalette image:IMAGE, palette:EXAMPLE_PALETTE -> IMAGE
 * The palette is an object value: a pointer this pack allocated, a type name, and a free
 * function the host calls when the last reference goes (after the cache drops it). Any
 * type name works on a socket; the editor only connects outputs and inputs whose names
 * match. */
#include "example.h"

#include <string.h>

typedef struct example_palette {
    uint32_t n;                             /* colors in rgb */
    float rgb[EXAMPLE_PALETTE_MAX][3];      /* [n, 3], values in [0, 1] */
} example_palette_t;

/* The object's free function. It lives in this library, which kiln keeps loaded until
 * the engine closes, after every value is gone. */
static void palette_free(void *p)
{
    kiln_free(p);
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Parses "#rrggbb" (the '#' optional) at s[0..len) into rgb; 0 or -1. */
static int parse_color(const char *s, size_t len, float rgb[3])
{
    if (len > 0 && s[0] == '#') {
        s++;
        len--;
    }
    if (len != 6)
        return -1;
    for (int k = 0; k < 3; k++) {
        int hi = hex_digit(s[2 * k]), lo = hex_digit(s[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        rgb[k] = (float)(hi * 16 + lo) / 255.0f;
    }
    return 0;
}

/* Fills pal from a list of colors separated by commas or white space. */
static int parse_palette(kiln_call_t *call, const char *s, size_t len, example_palette_t *pal)
{
    pal->n = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && (s[i] == ',' || s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
            i++;
        size_t start = i;
        while (i < len && s[i] != ',' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n')
            i++;
        if (i == start)
            break;
        if (pal->n == EXAMPLE_PALETTE_MAX)
            return kiln_call_failf(call, "a palette holds at most %d colors",
                                   EXAMPLE_PALETTE_MAX);
        if (parse_color(s + start, i - start, pal->rgb[pal->n]) != 0)
            return kiln_call_failf(call, "'%.*s' is not a color like #ff8800",
                                   (int)(i - start > 32 ? 32 : i - start), s + start);
        pal->n++;
    }
    return pal->n ? 0 : kiln_call_fail(call, "the palette has no colors");
}

static int make_execute(kiln_call_t *call)
{
    const char *s;
    size_t len;
    const kiln_value_t *colors = kiln_call_input(call, "colors");
    if (!colors || kiln_value_get_string(colors, &s, &len) != 0)
        return kiln_call_fail(call, "input 'colors' is missing or is not a string");
    /* kiln_malloc: host memory counted in kiln's budgets, freed with kiln_free. */
    example_palette_t *pal = kiln_malloc(sizeof *pal);
    if (!pal)
        return kiln_call_fail(call, "out of memory");
    int rc = parse_palette(call, s, len, pal);
    if (rc != 0) {
        kiln_free(pal);
        return rc;
    }
    uint32_t n = pal->n;
    /* The value owns pal from here; when it cannot be made, palette_free already ran. */
    kiln_value_t *v = kiln_value_new_object(EXAMPLE_PALETTE_TYPE, pal, palette_free);
    if (!v)
        return kiln_call_fail(call, "out of memory");
    rc = kiln_call_set_output(call, 0, v);
    if (rc == 0)
        rc = kiln_call_set_output(call, 1, kiln_value_new_int(n));
    return rc;
}

/* Index of the palette color nearest to rgb (squared distance; the first one on ties). */
static uint32_t nearest(const example_palette_t *pal, const float *rgb)
{
    uint32_t best = 0;
    float best_d = 0.0f;
    for (uint32_t i = 0; i < pal->n; i++) {
        float d = 0.0f;
        for (int k = 0; k < 3; k++) {
            float e = rgb[k] - pal->rgb[i][k];
            d += e * e;
        }
        if (i == 0 || d < best_d) {
            best = i;
            best_d = d;
        }
    }
    return best;
}

static int apply_execute(kiln_call_t *call)
{
    /* Borrowed: the object stays alive while the call runs; this node never writes it. */
    const example_palette_t *pal =
        kiln_value_get_object(kiln_call_input(call, "palette"), EXAMPLE_PALETTE_TYPE);
    if (!pal)
        return kiln_call_fail(call, "input 'palette' is missing or is not an "
                              EXAMPLE_PALETTE_TYPE);
    example_image_t in;
    int rc = example_input_image(call, "image", &in);
    if (rc != 0)
        return rc;
    if (in.c < 3) {
        example_image_release(&in);
        return kiln_call_fail(call, "ExampleApplyPalette needs RGB images");
    }
    int64_t shape[4] = {in.b, in.h, in.w, in.c};
    kiln_tensor_t *out;
    float *dst;
    rc = example_new_image(call, shape, &out, &dst); // [B, H, W, C]
    if (rc == 0) {
        memcpy(dst, in.data, (size_t)(in.b * in.h * in.w * in.c) * sizeof *dst);
        for (int64_t i = 0; i < in.b * in.h * in.w; i++)
            memcpy(dst + i * in.c, pal->rgb[nearest(pal, in.data + i * in.c)], 3 * sizeof *dst);
        rc = example_set_image(call, 0, out);
    }
    example_image_release(&in);
    return rc;
}

static const kiln_input_def_t make_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "colors", .type = "STRING", .has_default = 1,
     .default_string = "#000000, #ffffff",
     .tooltip = "Colors as #rrggbb, separated by commas or spaces."},
    {0}};

static const kiln_output_def_t make_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = EXAMPLE_PALETTE_TYPE, .name = "palette"},
    {KILN_OUTPUT_DEF_INIT, .type = "INT", .name = "count"},
    {0}};

static const kiln_input_def_t apply_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "palette", .type = EXAMPLE_PALETTE_TYPE},
    {0}};

static const kiln_output_def_t apply_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"},
    {0}};

const kiln_node_def_t example_make_palette = {
    KILN_NODE_DEF_INIT, .name = "ExampleMakePalette", .display_name = "Make Palette (example)",
    .category = "example/palette", .description = "Builds a color palette from a list.",
    .inputs = make_inputs, .outputs = make_outputs, .execute = make_execute};

const kiln_node_def_t example_apply_palette = {
    KILN_NODE_DEF_INIT, .name = "ExampleApplyPalette",
    .display_name = "Apply Palette (example)", .category = "example/palette",
    .description = "Replaces each pixel's color by the nearest palette color.",
    .inputs = apply_inputs, .outputs = apply_outputs, .execute = apply_execute};
