#define _GNU_SOURCE
/* The PNG encoder on its own: what it writes decodes (with libpng itself)
   to the pixels it was given, in the layout it says it chose, and the
   header check accepts what it wrote and nothing malformed.  */
#include "check.h"
#include "pngenc.h"
#include "util.h"

#include <png.h>
#include <string.h>

/* Decodes PNG bytes to 8-bit RGBA with libpng's simplified API.  Returns
   the pixels (allocated) or NULL.  */
static uint8_t *
decode(const uint8_t *png, size_t len, uint32_t *w, uint32_t *h)
{
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, png, len))
    return NULL;
  img.format = PNG_FORMAT_RGBA;
  uint8_t *out = xmalloc(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, NULL, out, 0, NULL)) {
    free(out);
    return NULL;
  }
  *w = img.width;
  *h = img.height;
  return out;
}

static void
round_trip(const uint8_t *rgba, uint32_t w, uint32_t h, enum cap_png_kind want)
{
  size_t len;
  enum cap_png_kind kind;
  kiln_error_t err = NULL;
  uint8_t *png = cap_png_encode_rgba(rgba, w, h, &len, &kind, &err);
  CHECK(png != NULL && err == NULL);
  if (png == NULL)
    return;
  CHECK(kind == want);
  uint32_t cw, ch;
  CHECK(cap_png_check(png, len, &cw, &ch) && cw == w && ch == h);
  uint32_t dw, dh;
  uint8_t *back = decode(png, len, &dw, &dh);
  CHECK(back != NULL && dw == w && dh == h);
  if (back) {
    /* An opaque image comes back opaque; every pixel is the one given.  */
    CHECK(memcmp(back, rgba, (size_t)w * h * 4) == 0);
    free(back);
  }
  free(png);
}

static void
few_colours_are_a_palette_image_that_decodes_to_the_same_pixels(void)
{
  uint32_t w = 37, h = 23;
  uint8_t *p = xmalloc((size_t)w * h * 4);
  for (uint32_t i = 0; i < w * h; i++) {
    static const uint8_t colours[3][4]
        = { { 255, 255, 255, 255 }, { 31, 119, 180, 255 }, { 255, 127, 14, 255 } };
    memcpy(p + 4 * i, colours[(i / 7 + i % 3) % 3], 4);
  }
  round_trip(p, w, h, CAP_PNG_PALETTE);
  free(p);
}

static void
translucent_palette_pixels_keep_their_alpha(void)
{
  uint32_t w = 16, h = 16;
  uint8_t *p = xmalloc((size_t)w * h * 4);
  for (uint32_t i = 0; i < w * h; i++) {
    uint8_t px[4] = { 10, 20, 30, (uint8_t)(i % 2 ? 255 : 128) };
    memcpy(p + 4 * i, px, 4);
  }
  round_trip(p, w, h, CAP_PNG_PALETTE);
  free(p);
}

static void
many_opaque_colours_are_rgb(void)
{
  uint32_t w = 64, h = 64;
  uint8_t *p = xmalloc((size_t)w * h * 4);
  for (uint32_t i = 0; i < w * h; i++) {
    uint8_t px[4] = { (uint8_t)i, (uint8_t)(i >> 4), (uint8_t)(i * 7), 255 };
    memcpy(p + 4 * i, px, 4);
  }
  round_trip(p, w, h, CAP_PNG_RGB);
  free(p);
}

static void
many_translucent_colours_are_rgba(void)
{
  uint32_t w = 64, h = 64;
  uint8_t *p = xmalloc((size_t)w * h * 4);
  for (uint32_t i = 0; i < w * h; i++) {
    uint8_t px[4] = { (uint8_t)i, (uint8_t)(i >> 4), (uint8_t)(i * 7), (uint8_t)(i * 3) };
    memcpy(p + 4 * i, px, 4);
  }
  round_trip(p, w, h, CAP_PNG_RGBA);
  free(p);
}

static void
the_header_check_refuses_what_is_not_a_png_head(void)
{
  uint8_t px[4] = { 1, 2, 3, 255 };
  size_t len;
  enum cap_png_kind kind;
  uint8_t *png = cap_png_encode_rgba(px, 1, 1, &len, &kind, NULL);
  CHECK(png != NULL);
  if (png == NULL)
    return;
  uint32_t w, h;
  CHECK(cap_png_check(png, len, &w, &h) && w == 1 && h == 1);
  /* Cut short, a wrong signature, a broken IHDR CRC: each refused.  */
  CHECK(!cap_png_check(png, 20, &w, &h));
  uint8_t *bad = xmalloc(len);
  memcpy(bad, png, len);
  bad[1] ^= 1;
  CHECK(!cap_png_check(bad, len, &w, &h));
  memcpy(bad, png, len);
  bad[29] ^= 1; /* inside the IHDR CRC */
  CHECK(!cap_png_check(bad, len, &w, &h));
  memcpy(bad, png, len);
  memset(bad + 16, 0, 4); /* width 0 (the CRC no longer matches either) */
  CHECK(!cap_png_check(bad, len, &w, &h));
  free(bad);
  free(png);
}

int
main(void)
{
  static const struct test_case cases[] = {
    { "few colours are a palette image that decodes to the same pixels",
      few_colours_are_a_palette_image_that_decodes_to_the_same_pixels },
    { "translucent palette pixels keep their alpha", translucent_palette_pixels_keep_their_alpha },
    { "many opaque colours are RGB", many_opaque_colours_are_rgb },
    { "many translucent colours are RGBA", many_translucent_colours_are_rgba },
    { "the header check refuses what is not a PNG head",
      the_header_check_refuses_what_is_not_a_png_head },
  };
  return RUN(cases);
}
