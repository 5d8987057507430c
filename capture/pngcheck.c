/* The check of a PNG's head (pngenc.h), apart from the encoder: it needs
   zlib's CRC and nothing of Python, so that the MCP layer's file tools
   can be built without the interpreter (the fuzzing build does).  */
#include "pngenc.h"

#include <string.h>
#include <zlib.h>

static uint32_t
be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool
cap_png_check(const uint8_t *d, size_t len, uint32_t *width, uint32_t *height)
{
  static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  if (len < 8 + 8 + 13 + 4 || memcmp(d, sig, 8) != 0 || be32(d + 8) != 13
      || memcmp(d + 12, "IHDR", 4) != 0)
    return false;
  if ((uint32_t)crc32(crc32(0, NULL, 0), d + 12, 17) != be32(d + 29))
    return false;
  uint32_t w = be32(d + 16), h = be32(d + 20);
  if (w == 0 || h == 0 || w > 32768 || h > 32768)
    return false;
  *width = w;
  *height = h;
  return true;
}
