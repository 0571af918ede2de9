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

/* Scaled JPEG decoding of a tiled JPEG TIFF page (Aperio SVS, pyramidal
 * TIFF): the page's tile index and JPEGTables, in C memory, owned by the Go
 * side (her2_jtiles_new / her2_jtiles_free). */
typedef struct {
	int fd;                       /* the slide file, read with pread */
	int64_t *offs, *cnts;         /* per tile, row-major */
	int across, down;             /* tiles per row and per column */
	int tw, th;                   /* tile size */
	int iw, ih;                   /* page size */
	unsigned char *tables;        /* JPEGTables (SOI, DQT/DHT, EOI), or NULL */
	size_t tlen;
	int rgb;                      /* photometric RGB: the JPEG data is RGB, not YCbCr */
} her2_jtiles;

her2_jtiles *her2_jtiles_new(int fd, const int64_t *offs, const int64_t *cnts, int ntiles,
			     int across, int down, int tw, int th, int iw, int ih,
			     const unsigned char *tables, size_t tlen, int rgb);
void her2_jtiles_free(her2_jtiles *t);

/* Read the (f·w)×(f·h) region at (x, y) of the page reduced by f (1, 2, 4
 * or 8) straight into dst (w×h packed RGB): each tile it touches is read
 * raw and decoded by libjpeg-turbo at scale 1/f in the DCT domain, only the
 * needed columns (jpeg_crop_scanline) and rows (jpeg_skip_scanlines) when
 * crop is set. The region must lie inside the page and x, y be multiples of
 * f. A libjpeg error or warning (corrupt data) fails the read: *msg is a
 * malloc'd one-line reason. */
int her2_read_scaled(const her2_jtiles *t, int x, int y, int w, int h, int f, int crop,
		     unsigned char *dst, char **msg);

/* The benchmark ceiling: decode n tiles held in memory (bufs[i], lens[i])
 * at scale 1/f, whole, with one decompressor, discarding the pixels. */
int her2_decode_tiles_bare(const her2_jtiles *t, unsigned char **bufs, const size_t *lens, int n,
			   int f, char **msg);

/* The same through libvips' jpegload_buffer with shrink f (tables merged
 * into each tile's bytes), for the benchmark that compared the two. */
int her2_decode_tiles_vips(const her2_jtiles *t, unsigned char **bufs, const size_t *lens, int n, int f);

/* Decode an 8-bit JPEG in memory with libjpeg on the calling thread into dh
 * rows of dw packed RGB pixels (cropping a larger image); corrupt data fails.
 * msg: JMSG_LENGTH_MAX (200) bytes for the failure. */
int her2_jpeg_decode(const unsigned char *buf, size_t len, unsigned char *dst, int dw, int dh,
		     int *w, int *h, char *msg);

/* Box-average f×f blocks of src (rows lskip bytes apart) into w×h packed RGB. */
void her2_box_reduce(const unsigned char *src, size_t lskip, int w, int h, int f, unsigned char *dst);

void her2_unref(VipsImage *im);

#endif
