/* Small C layer between Go and libvips: the only C code that touches libvips. */
#ifndef HER2_SHIM_H
#define HER2_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <vips/vips.h>

int her2_init(void);

/* Error text of the last failure in this thread's libvips call, copied; the
 * caller frees it with g_free. The libvips buffer is cleared. */
char *her2_take_error(void);

/* Whether libvips' (process-wide) error buffer holds text. */
int her2_error_pending(void);

/* Loaders. Each returns a new 3-band uchar sRGB image (normalised), or NULL. */
VipsImage *her2_open_openslide(const char *path, int level);
VipsImage *her2_open_tiff(const char *path, int page, int strict);
VipsImage *her2_open_generic(const char *path, int strict);

/* Associated images through the OpenSlide C API. */
int her2_associated_size(const char *path, const char *name, int64_t *w, int64_t *h);
int her2_associated_read(const char *path, const char *name, unsigned char *dst,
			 int64_t npix, char **msg);

/* Header-only open through OpenSlide (no pixel access), for metadata. */
VipsImage *her2_openslide_header(const char *path);

/* Fill dst (w*h*3 bytes) with the region at (x, y); parts outside the image
 * are white. Returns 0 on success. */
int her2_read(VipsImage *im, int x, int y, int w, int h, unsigned char *dst);

/* Read the (f·w)×(f·h) region at (x, y) and average each f×f block into
 * dst (w*h*3 bytes): the integer-ratio patch read (40× → 20× is f = 2),
 * reduced straight from libvips' region memory. */
int her2_read_box(VipsImage *im, int x, int y, int w, int h, int f, unsigned char *dst);

/* The benchmark ceiling: n reads (rects: n × {x, y, w, h}) into one buffer
 * in a single C loop, with no Go in between. */
int her2_read_many(VipsImage *im, const int *rects, int n, unsigned char *dst);
int her2_jpeg(const unsigned char *rgb, int w, int h, int quality, unsigned char **out, unsigned long *len);

/* Resize im by scale (area-averaging shrink, then linear) into dst
 * (dw*dh*3 bytes). Streams, so memory stays small for large inputs. */
int her2_resize_to(VipsImage *im, double hscale, double vscale, int dw, int dh, unsigned char *dst);

/* Metadata. her2_fields returns a NULL-terminated array (g_strfreev). */
char **her2_fields(VipsImage *im);
char *her2_get_string(VipsImage *im, const char *name);

/* Writer (WriteTIFF, WriteImage): save im as a tiled, optionally pyramidal TIFF. */
VipsImage *her2_image_from_rgb(const unsigned char *pix, int w, int h);
int her2_save_pyramid(VipsImage *im, const char *path, const char *description,
		      double xres_ppmm, int tile, int quality, int bigtiff,
		      int pyramid, int compression_jpeg);

/* A width×height 3-band uchar image whose pixels come from the Go side,
 * region by region (her2GoFill with handle), possibly from several threads. */
VipsImage *her2_image_from_fill(int width, int height, uintptr_t handle);

/* A width×height 3-band uchar image whose pixels come from the Go side
 * (her2GoSource with handle), region by region, for reading: unlike
 * her2_image_from_fill, a failed fill fails the read. */
VipsImage *her2_image_from_source(int width, int height, uintptr_t handle);

/* Decode a compressed image held in memory (kind 1: JPEG, 2: JPEG 2000,
 * 0: whatever libvips' buffer loaders take) to packed 3-band uchar sRGB.
 * Returns a g_malloc'd buffer of *w × *h × 3 bytes, or NULL. */
unsigned char *her2_decode_buffer(const void *buf, size_t len, int kind, int *w, int *h);

/* Encode w×h packed RGB as a lossless JPEG 2000 codestream (g_free *buf);
 * for test series. */
int her2_encode_j2k(const unsigned char *pix, int w, int h, void **buf, size_t *len);

/* Decode an 8-bit JPEG in memory with libjpeg on the calling thread into dh
 * rows of dw packed RGB pixels (cropping a larger image); corrupt data fails.
 * msg: JMSG_LENGTH_MAX (200) bytes for the failure. */
int her2_jpeg_decode(const unsigned char *buf, size_t len, unsigned char *dst, int dw, int dh,
		     int *w, int *h, char *msg);

/* Box-average f×f blocks of src (rows lskip bytes apart) into w×h packed RGB. */
void her2_box_reduce(const unsigned char *src, size_t lskip, int w, int h, int f, unsigned char *dst);

void her2_unref(VipsImage *im);

#endif
