/* Base64, for binary data in JSON.  */
#ifndef KILN_BASE64_H
#define KILN_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Base64 (RFC 4648, padded) of [DATA, DATA+N): a newly allocated,
   NUL-terminated string the caller frees.  */
char *base64_encode(const uint8_t *data, size_t n);

/* Decodes padded or unpadded base64 (whitespace ignored).  Returns the
   bytes (allocated, the caller frees them) and their length in *LEN, or
   NULL when the text is not base64.  */
uint8_t *base64_decode(const char *text, size_t n, size_t *len);

#endif
