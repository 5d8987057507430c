/* PNG encoding for captured figures and images, with libpng, tuned for
   plots: large flat areas and few colours.  */
#ifndef KILN_CAPTURE_PNG_H
#define KILN_CAPTURE_PNG_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How an image was written (for metadata and tests).  */
enum cap_png_kind {
  CAP_PNG_PALETTE, /* <= 256 colours: 8-bit indexed, with tRNS if any alpha */
  CAP_PNG_RGB,     /* opaque: alpha dropped */
  CAP_PNG_RGBA,
};

/* Encodes WIDTH x HEIGHT pixels of 8-bit RGBA (row stride WIDTH * 4) as
   PNG.  Returns the bytes (allocated, the caller frees them) and their
   length in *LEN, the layout chosen in *KIND; NULL with ERR on failure.  */
uint8_t *cap_png_encode_rgba(const uint8_t *rgba, uint32_t width, uint32_t height, size_t *len,
                             enum cap_png_kind *kind, kiln_error_t *err);

/* Whether DATA is a well-formed PNG head: the signature, then an IHDR chunk
   of the right length with a correct CRC and dimensions in 1..32768.
   Fills *WIDTH and *HEIGHT.  Files read back from a session are checked
   with this before they are sent as images.  */
bool cap_png_check(const uint8_t *data, size_t len, uint32_t *width, uint32_t *height);

/* Registers the built-in module `_kiln_png` (encode(buffer, width, height)
   -> (bytes, kind)) with the embedded interpreter; call before it is
   initialised.  */
int cap_png_register(void);

#endif
