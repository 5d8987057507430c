#define _GNU_SOURCE
#include "pycompat.h"

#include "pngenc.h"
#include "util.h"

#include <png.h>
#include <string.h>

/* Colours are counted in a small open-addressing table; past 256 the
   image is not a palette image and counting stops.  */
#define MAX_COLOURS 256
#define TABLE_SIZE  1024

struct palette {
  uint32_t keys[TABLE_SIZE]; /* RGBA, where USED */
  bool used[TABLE_SIZE];
  uint8_t index[TABLE_SIZE];
  uint32_t colours[MAX_COLOURS];
  int n;
};

static int
palette_lookup(struct palette *p, uint32_t rgba)
{
  uint32_t h = (rgba * 2654435761u) >> 22; /* 10 bits */
  for (;;) {
    if (p->used[h] && p->keys[h] == rgba)
      return p->index[h];
    if (!p->used[h]) {
      if (p->n == MAX_COLOURS)
        return -1;
      p->used[h] = true;
      p->keys[h] = rgba;
      p->index[h] = (uint8_t)p->n;
      p->colours[p->n] = rgba;
      return p->n++;
    }
    h = (h + 1) & (TABLE_SIZE - 1);
  }
}

struct sink {
  struct buf out;
};

static void
sink_write(png_structp png, png_bytep data, png_size_t n)
{
  struct sink *s = png_get_io_ptr(png);
  buf_append(&s->out, data, n);
}

static void
sink_flush(png_structp png)
{
  (void)png;
}

uint8_t *
cap_png_encode_rgba(const uint8_t *rgba, uint32_t width, uint32_t height, size_t *len,
                    enum cap_png_kind *kind, kiln_error_t *err)
{
  if (width == 0 || height == 0 || width > 1 << 15 || height > 1 << 15) {
    kiln_error_make(err, 0, "image of %ux%u pixels is not encodable", width, height);
    return NULL;
  }
  size_t npix = (size_t)width * height;

  /* One pass decides the layout: opaque or not, and whether the colours
     fit a palette (plots nearly always do).  */
  struct palette *pal = xzalloc(sizeof *pal);
  bool opaque = true, fits = true;
  uint32_t last = 0;
  int last_idx = -1;
  for (size_t i = 0; i < npix; i++) {
    uint32_t c;
    memcpy(&c, rgba + 4 * i, 4);
    opaque &= rgba[4 * i + 3] == 255;
    if (fits && (last_idx < 0 || c != last)) {
      last_idx = palette_lookup(pal, c);
      last = c;
      fits = last_idx >= 0;
    }
  }
  *kind = fits ? CAP_PNG_PALETTE : opaque ? CAP_PNG_RGB : CAP_PNG_RGBA;

  struct sink sink = { { 0 } };
  /* Assigned after setjmp and freed on the longjmp path: volatile, or
     its value there would be indeterminate (C17 7.13.2.1).  */
  uint8_t *volatile row = NULL;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (info == NULL) {
    kiln_error_make(err, 0, "libpng: cannot create a writer");
    goto fail;
  }
  if (setjmp(png_jmpbuf(png))) {
    kiln_error_make(err, 0, "libpng failed to encode the image");
    goto fail;
  }
  png_set_write_fn(png, &sink, sink_write, sink_flush);
  /* Plots are mostly flat: a palette image compresses well with no
     filter; truecolour with the Up filter (rows repeat) and a fast zlib
     level, which is where the time goes.  */
  if (*kind == CAP_PNG_PALETTE) {
    png_set_filter(png, 0, PNG_FILTER_NONE);
    png_set_compression_level(png, 6);
  } else {
    png_set_filter(png, 0, PNG_FILTER_UP);
    png_set_compression_level(png, 3);
  }
  png_set_compression_strategy(png, 0 /* Z_DEFAULT_STRATEGY */);
  int color = *kind == CAP_PNG_PALETTE ? PNG_COLOR_TYPE_PALETTE
              : *kind == CAP_PNG_RGB   ? PNG_COLOR_TYPE_RGB
                                       : PNG_COLOR_TYPE_RGBA;
  int depth = 8;
  if (*kind == CAP_PNG_PALETTE)
    depth = pal->n <= 2 ? 1 : pal->n <= 4 ? 2 : pal->n <= 16 ? 4 : 8;
  png_set_IHDR(png, info, width, height, depth, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (*kind == CAP_PNG_PALETTE) {
    png_color colours[MAX_COLOURS];
    png_byte alpha[MAX_COLOURS];
    int last_translucent = -1;
    for (int i = 0; i < pal->n; i++) {
      const uint8_t *c = (const uint8_t *)&pal->colours[i];
      colours[i] = (png_color){ c[0], c[1], c[2] };
      alpha[i] = c[3];
      if (c[3] != 255)
        last_translucent = i;
    }
    png_set_PLTE(png, info, colours, pal->n);
    if (last_translucent >= 0)
      png_set_tRNS(png, info, alpha, last_translucent + 1, NULL);
  }
  png_write_info(png, info);

  size_t rowbytes = *kind == CAP_PNG_RGBA ? (size_t)width * 4 : (size_t)width * 3;
  if (*kind == CAP_PNG_PALETTE)
    rowbytes = ((size_t)width * (size_t)depth + 7) / 8;
  row = xmalloc(rowbytes);
  for (uint32_t y = 0; y < height; y++) {
    const uint8_t *src = rgba + (size_t)y * width * 4;
    if (*kind == CAP_PNG_RGBA) {
      png_write_row(png, (png_const_bytep)src);
      continue;
    }
    if (*kind == CAP_PNG_RGB) {
      for (uint32_t x = 0; x < width; x++)
        memcpy(row + 3 * x, src + 4 * x, 3);
    } else {
      memset(row, 0, rowbytes);
      int per = 8 / depth;
      for (uint32_t x = 0; x < width; x++) {
        uint32_t c;
        memcpy(&c, src + 4 * x, 4);
        int idx = palette_lookup(pal, c);
        row[x / per] |= (uint8_t)(idx << ((per - 1 - x % per) * depth));
      }
    }
    png_write_row(png, row);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(row);
  free(pal);
  *len = sink.out.len;
  return sink.out.data;

fail:
  if (png)
    png_destroy_write_struct(&png, info ? &info : NULL);
  free(row);
  free(pal);
  buf_free(&sink.out);
  return NULL;
}

/* encode(buffer, width, height) -> (bytes, "palette" | "rgb" | "rgba") */
static PyObject *
py_encode(PyObject *self, PyObject *args)
{
  Py_buffer view;
  unsigned int width, height;
  (void)self;
  if (!PyArg_ParseTuple(args, "y*II", &view, &width, &height))
    return NULL;
  if ((size_t)view.len != (size_t)width * height * 4) {
    PyBuffer_Release(&view);
    return PyErr_Format(PyExc_ValueError, "buffer holds %zd bytes, not %u x %u x 4", view.len,
                        width, height);
  }
  size_t len = 0;
  enum cap_png_kind kind;
  kiln_error_t err = NULL;
  uint8_t *png;
  Py_BEGIN_ALLOW_THREADS png = cap_png_encode_rgba(view.buf, width, height, &len, &kind, &err);
  Py_END_ALLOW_THREADS PyBuffer_Release(&view);
  if (png == NULL) {
    PyErr_SetString(PyExc_ValueError, err ? err->msg : "PNG encoding failed");
    kiln_error_release(&err);
    return NULL;
  }
  static const char *const names[] = { "palette", "rgb", "rgba" };
  PyObject *r = Py_BuildValue("(y#s)", (const char *)png, (Py_ssize_t)len, names[kind]);
  free(png);
  return r;
}

static PyMethodDef methods[] = {
  { "encode", py_encode, METH_VARARGS, "encode(rgba, width, height) -> (png_bytes, layout)" },
  { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = { PyModuleDef_HEAD_INIT,
                                     "_kiln_png",
                                     "kiln's PNG encoder (libpng)",
                                     -1,
                                     methods,
                                     NULL,
                                     NULL,
                                     NULL,
                                     NULL };

static PyObject *
init_module(void)
{
  return PyModule_Create(&module);
}

int
cap_png_register(void)
{
  return PyImport_AppendInittab("_kiln_png", init_module);
}
