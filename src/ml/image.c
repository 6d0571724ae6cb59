/* image.c: PNG/JPEG decoding for image inputs, and the conversion of an
 * image value to the planar float tensor a network reads.
 *
 * Decoding uses the Debian libraries (libpng, libjpeg-turbo) when the build
 * found their headers (CAI_HAVE_PNG / CAI_HAVE_JPEG). The conversion resizes
 * bilinearly (pixel centers aligned, like most image libraries) to the
 * model's declared width and height, then maps channels to the model's color
 * space: GRAYSCALE takes the luma 0.299 R + 0.587 G + 0.114 B, RGB and BGR
 * take the first three channels (alpha ignored) in that order. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "ml.h"

#ifdef CAI_HAVE_PNG
#include <png.h>
#endif
#ifdef CAI_HAVE_JPEG
#include <jpeglib.h>
#endif

#define MAX_SIDE 16384

#ifdef CAI_HAVE_PNG
static int load_png(struct cml_value *out, FILE *f, const char *path, struct cai_error *err)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_stdio(&img, f))
        return cai__fail(err, CAI_EFORMAT, "%s: %s", path, img.message);
    if (img.width == 0 || img.height == 0 || img.width > MAX_SIDE || img.height > MAX_SIDE) {
        png_image_free(&img);
        return cai__fail(err, CAI_EFORMAT, "%s: bad image size %ux%u", path, img.width,
                         img.height);
    }
    bool gray = !(img.format & PNG_FORMAT_FLAG_COLOR);
    bool alpha = img.format & PNG_FORMAT_FLAG_ALPHA;
    img.format = gray ? PNG_FORMAT_GRAY : alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    int ch = gray ? 1 : alpha ? 4 : 3;
    size_t stride = (size_t)img.width * (size_t)ch;
    uint8_t *px = cai__malloc_array(stride, img.height);
    if (!px) {
        png_image_free(&img);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    }
    if (!png_image_finish_read(&img, NULL, px, (png_int_32)stride, NULL)) {
        cai__free(px);
        return cai__fail(err, CAI_EFORMAT, "%s: %s", path, img.message);
    }
    out->pixels = px;
    out->width = (int)img.width;
    out->height = (int)img.height;
    out->channels = ch;
    out->stride = stride;
    return 0;
}
#endif /* CAI_HAVE_PNG */

#ifdef CAI_HAVE_JPEG
struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf               jb;
};

static void jpeg_fail(j_common_ptr cinfo)
{
    struct jerr *e = (struct jerr *)cinfo->err;
    longjmp(e->jb, 1);
}

static void jpeg_silent(j_common_ptr cinfo)
{
    (void)cinfo;
}

static int load_jpeg(struct cml_value *out, FILE *f, const char *path, struct cai_error *err)
{
    struct jpeg_decompress_struct cinfo;
    struct jerr je;
    uint8_t *volatile px = NULL;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.output_message = jpeg_silent;
    if (setjmp(je.jb)) {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
        jpeg_destroy_decompress(&cinfo);
        cai__free(px);
        return cai__fail(err, CAI_EFORMAT, "%s: %s", path, msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components != 1)
        cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int ch = (int)cinfo.output_components;
    if (cinfo.output_width == 0 || cinfo.output_height == 0 || cinfo.output_width > MAX_SIDE ||
        cinfo.output_height > MAX_SIDE || (ch != 1 && ch != 3)) {
        jpeg_destroy_decompress(&cinfo);
        return cai__fail(err, CAI_EFORMAT, "%s: unsupported JPEG geometry", path);
    }
    size_t stride = (size_t)cinfo.output_width * (size_t)ch;
    px = cai__malloc_array(stride, cinfo.output_height);
    if (!px) {
        jpeg_destroy_decompress(&cinfo);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    out->pixels = px;
    out->width = (int)cinfo.output_width;
    out->height = (int)cinfo.output_height;
    out->channels = ch;
    out->stride = stride;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
#endif /* CAI_HAVE_JPEG */

int cml_image_load(struct cml_value *out, const char *path, struct cai_error *err)
{
    uint8_t sig[8] = {0};
    if (!out || !path)
        return cai__fail(err, CAI_EINVAL, "cml_image_load: NULL argument");
    memset(out, 0, sizeof(*out));
    out->type = CML_TYPE_IMAGE;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cai__fail(err, CAI_EIO, "%s: cannot open", path);
    size_t n = fread(sig, 1, sizeof(sig), f);
    rewind(f);
    int rc;
    if (n == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0) {
#ifdef CAI_HAVE_PNG
        rc = load_png(out, f, path, err);
#else
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: built without libpng", path);
#endif
    } else if (n >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff) {
#ifdef CAI_HAVE_JPEG
        rc = load_jpeg(out, f, path, err);
#else
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: built without libjpeg", path);
#endif
    } else {
        rc = cai__fail(err, CAI_EFORMAT, "%s: not a PNG or JPEG file", path);
    }
    fclose(f);
    return rc;
}

void cml_image_free(struct cml_value *v)
{
    if (!v)
        return;
    cai__free((void *)v->pixels);
    v->pixels = NULL;
}

/* Samples channel c of the image at (fx, fy) in source pixel coordinates. */
static float sample(const struct cml_value *img, int c, float fx, float fy)
{
    int W = img->width, H = img->height;
    fx = fx < 0.0f ? 0.0f : fx > (float)(W - 1) ? (float)(W - 1) : fx;
    fy = fy < 0.0f ? 0.0f : fy > (float)(H - 1) ? (float)(H - 1) : fy;
    int x0 = (int)fx, y0 = (int)fy;
    int x1 = x0 + 1 < W ? x0 + 1 : x0, y1 = y0 + 1 < H ? y0 + 1 : y0;
    float ax = fx - (float)x0, ay = fy - (float)y0;
    const uint8_t *r0 = img->pixels + (size_t)y0 * img->stride;
    const uint8_t *r1 = img->pixels + (size_t)y1 * img->stride;
    size_t ch = (size_t)img->channels;
    float a = r0[(size_t)x0 * ch + (size_t)c], b = r0[(size_t)x1 * ch + (size_t)c];
    float d = r1[(size_t)x0 * ch + (size_t)c], e = r1[(size_t)x1 * ch + (size_t)c];
    return (a + (b - a) * ax) * (1.0f - ay) + (d + (e - d) * ax) * ay;
}

static float channel(const struct cml_value *img, int want, float fx, float fy)
{
    /* want: 0..2 = R, G, B; 3 = luma. */
    if (img->channels < 3)
        return sample(img, 0, fx, fy);
    if (want < 3)
        return sample(img, want, fx, fy);
    return 0.299f * sample(img, 0, fx, fy) + 0.587f * sample(img, 1, fx, fy) +
           0.114f * sample(img, 2, fx, fy);
}

void cml__image_to_planar(const struct cml_value *img, int width, int height,
                          enum cml_color_space cs, float *out)
{
    float sx = (float)img->width / (float)width, sy = (float)img->height / (float)height;
    int n_ch = cs == CML_COLOR_RGB || cs == CML_COLOR_BGR ? 3 : 1;
    for (int c = 0; c < n_ch; c++) {
        int want = n_ch == 1 ? 3 : cs == CML_COLOR_BGR ? 2 - c : c;
        for (int y = 0; y < height; y++) {
            float fy = ((float)y + 0.5f) * sy - 0.5f;
            for (int x = 0; x < width; x++) {
                float fx = ((float)x + 0.5f) * sx - 0.5f;
                out[((size_t)c * (size_t)height + (size_t)y) * (size_t)width + (size_t)x] =
                    channel(img, want, fx, fy);
            }
        }
    }
}
