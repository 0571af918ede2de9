#include <setjmp.h>
#include <stdio.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <openslide.h>
#include "shim.h"

extern void her2GoLog(int level, char *domain, char *msg);

static void her2_log_handler(const gchar *domain, GLogLevelFlags level,
			     const gchar *message, gpointer user)
{
	(void) user;
	her2GoLog((int) (level & G_LOG_LEVEL_MASK), (char *) (domain ? domain : ""),
		  (char *) message);
}

int her2_init(void)
{
	if (VIPS_INIT("her2wsi"))
		return -1;
	/* Slides in a watch folder are replaced under the same name: never serve
	 * a cached open. */
	vips_cache_set_max(0);
	GLogLevelFlags levels = G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
				G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_INFO;
	g_log_set_handler("VIPS", levels, her2_log_handler, NULL);
	g_log_set_handler("Openslide", levels, her2_log_handler, NULL);
	g_log_set_handler("OpenSlide", levels, her2_log_handler, NULL);
	g_log_set_handler(NULL, levels, her2_log_handler, NULL);
	return 0;
}

char *her2_take_error(void)
{
	char *s = g_strdup(vips_error_buffer());
	vips_error_clear();
	return s;
}

/* Normalise any loaded image to 3-band uchar sRGB: transparent pixels become
 * white (the colour of glass), 16-bit becomes 8-bit, grey becomes RGB.
 * Takes ownership of in. */
static VipsImage *normalise(VipsImage *in)
{
	VipsImage *t = NULL;
	if (!in)
		return NULL;
	VipsInterpretation interp = vips_image_guess_interpretation(in);
	if (interp == VIPS_INTERPRETATION_RGB16 ||
	    interp == VIPS_INTERPRETATION_GREY16 ||
	    in->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL)) {
			g_object_unref(in);
			return NULL;
		}
		g_object_unref(in);
		in = t;
	}
	if (in->Bands == 2 || in->Bands == 4) {
		double white[1] = {255.0};
		VipsArrayDouble *bg = vips_array_double_new(white, 1);
		int r = vips_flatten(in, &t, "background", bg, NULL);
		vips_area_unref(VIPS_AREA(bg));
		g_object_unref(in);
		if (r)
			return NULL;
		in = t;
	}
	if (in->Bands == 1) {
		VipsImage *b[3] = {in, in, in};
		int r = vips_bandjoin(b, &t, 3, NULL);
		g_object_unref(in);
		if (r)
			return NULL;
		in = t;
	} else if (in->Bands > 3) {
		int r = vips_extract_band(in, &t, 0, "n", 3, NULL);
		g_object_unref(in);
		if (r)
			return NULL;
		in = t;
	}
	if (in->BandFmt != VIPS_FORMAT_UCHAR) {
		int r = vips_cast_uchar(in, &t, NULL);
		g_object_unref(in);
		if (r)
			return NULL;
		in = t;
	}
	return in;
}

VipsImage *her2_open_openslide(const char *path, int level)
{
	VipsImage *out = NULL;
	if (vips_openslideload(path, &out, "level", level, NULL))
		return NULL;
	return normalise(out);
}

int her2_associated_size(const char *path, const char *name, int64_t *w, int64_t *h)
{
	openslide_t *os = openslide_open(path);
	if (!os)
		return -1;
	openslide_get_associated_image_dimensions(os, name, w, h);
	int bad = openslide_get_error(os) != NULL;
	openslide_close(os);
	return bad ? -1 : 0;
}

/* Reads an associated image as RGB composited on white. On failure *msg is
 * a malloc'd copy of OpenSlide's error. */
int her2_associated_read(const char *path, const char *name, unsigned char *dst,
			 int64_t npix, char **msg)
{
	openslide_t *os = openslide_open(path);
	if (!os) {
		*msg = strdup("openslide cannot open the file");
		return -1;
	}
	uint32_t *argb = malloc(npix * sizeof(uint32_t));
	if (!argb) {
		openslide_close(os);
		*msg = strdup("out of memory");
		return -1;
	}
	openslide_read_associated_image(os, name, argb);
	const char *err = openslide_get_error(os);
	if (err) {
		*msg = strdup(err);
		free(argb);
		openslide_close(os);
		return -1;
	}
	for (int64_t i = 0; i < npix; i++) {
		uint32_t p = argb[i];
		unsigned a = p >> 24;
		/* Premultiplied ARGB over white. */
		dst[3 * i] = (unsigned char) (((p >> 16) & 0xff) + 255 - a);
		dst[3 * i + 1] = (unsigned char) (((p >> 8) & 0xff) + 255 - a);
		dst[3 * i + 2] = (unsigned char) ((p & 0xff) + 255 - a);
	}
	free(argb);
	openslide_close(os);
	return 0;
}

VipsImage *her2_openslide_header(const char *path)
{
	VipsImage *out = NULL;
	if (vips_openslideload(path, &out, NULL))
		return NULL;
	return out;
}

VipsImage *her2_open_tiff(const char *path, int page, int strict)
{
	VipsImage *out = NULL;
	if (vips_tiffload(path, &out, "page", page, "access", VIPS_ACCESS_RANDOM,
			  "fail_on", strict ? VIPS_FAIL_ON_ERROR : VIPS_FAIL_ON_NONE,
			  NULL))
		return NULL;
	return normalise(out);
}

VipsImage *her2_open_generic(const char *path, int strict)
{
	VipsImage *out = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM,
			"fail_on", strict ? VIPS_FAIL_ON_ERROR : VIPS_FAIL_ON_NONE, NULL);
	return normalise(out);
}

int her2_read(VipsImage *im, int x, int y, int w, int h, unsigned char *dst)
{
	VipsRect want = {x, y, w, h};
	VipsRect whole = {0, 0, im->Xsize, im->Ysize};
	VipsRect in;
	vips_rect_intersectrect(&want, &whole, &in);
	if (in.width != w || in.height != h)
		memset(dst, 255, (size_t) w * h * 3);
	if (vips_rect_isempty(&in))
		return 0;
	VipsRegion *reg = vips_region_new(im);
	if (!reg)
		return -1;
	if (vips_region_prepare(reg, &in)) {
		g_object_unref(reg);
		return -1;
	}
	size_t line = (size_t) in.width * 3;
	for (int row = 0; row < in.height; row++) {
		unsigned char *src = VIPS_REGION_ADDR(reg, in.left, in.top + row);
		unsigned char *d = dst + ((size_t) (in.top - y + row) * w + (in.left - x)) * 3;
		memcpy(d, src, line);
	}
	g_object_unref(reg);
	return 0;
}

int her2_resize_to(VipsImage *im, double hscale, double vscale, int dw, int dh, unsigned char *dst)
{
	VipsImage *r = NULL, *c = NULL;
	if (vips_resize(im, &r, hscale, "vscale", vscale, "kernel", VIPS_KERNEL_LINEAR, NULL))
		return -1;
	/* Rounding in vips_resize can give one pixel more or less: pad/crop. */
	if (r->Xsize != dw || r->Ysize != dh) {
		if (vips_embed(r, &c, 0, 0, dw, dh, "extend", VIPS_EXTEND_COPY, NULL)) {
			g_object_unref(r);
			return -1;
		}
		g_object_unref(r);
		r = c;
	}
	size_t n = 0;
	void *mem = vips_image_write_to_memory(r, &n);
	g_object_unref(r);
	if (!mem)
		return -1;
	if (n != (size_t) dw * dh * 3) {
		g_free(mem);
		vips_error("her2", "resize produced %zu bytes, want %d", n, dw * dh * 3);
		return -1;
	}
	memcpy(dst, mem, n);
	g_free(mem);
	return 0;
}

char **her2_fields(VipsImage *im)
{
	return vips_image_get_fields(im);
}

char *her2_get_string(VipsImage *im, const char *name)
{
	char *s = NULL;
	if (vips_image_get_as_string(im, name, &s))
		return NULL;
	return s;
}

VipsImage *her2_image_from_rgb(const unsigned char *pix, int w, int h)
{
	return vips_image_new_from_memory_copy(pix, (size_t) w * h * 3, w, h, 3,
					       VIPS_FORMAT_UCHAR);
}

int her2_save_pyramid(VipsImage *im, const char *path, const char *description,
		      double xres_ppmm, int tile, int quality, int bigtiff,
		      int pyramid, int compression_jpeg)
{
	VipsImage *c = NULL;
	if (vips_copy(im, &c, "interpretation", VIPS_INTERPRETATION_sRGB,
		      "xres", xres_ppmm, "yres", xres_ppmm, NULL))
		return -1;
	if (description && *description)
		vips_image_set_string(c, "image-description", description);
	int r = vips_tiffsave(c, path,
			      "tile", TRUE, "tile_width", tile, "tile_height", tile,
			      "pyramid", pyramid ? TRUE : FALSE,
			      "compression", compression_jpeg ? VIPS_FOREIGN_TIFF_COMPRESSION_JPEG
							     : VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE,
			      "Q", quality, "bigtiff", bigtiff ? TRUE : FALSE,
			      "resunit", VIPS_FOREIGN_TIFF_RESUNIT_CM, NULL);
	g_object_unref(c);
	return r;
}

/* Defined in Go (slide/write.go). */
extern int her2GoFill(uintptr_t handle, int x, int y, int w, int h, unsigned char *dst,
		      int stride);

static int her2_fill_gen(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop)
{
	VipsRect *r = &out->valid;
	return her2GoFill((uintptr_t) a, r->left, r->top, r->width, r->height,
			  (unsigned char *) VIPS_REGION_ADDR(out, r->left, r->top),
			  (int) VIPS_REGION_LSKIP(out));
}

VipsImage *her2_image_from_fill(int width, int height, uintptr_t handle)
{
	VipsImage *im = vips_image_new();
	vips_image_init_fields(im, width, height, 3, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE,
			       VIPS_INTERPRETATION_sRGB, 1.0, 1.0);
	if (vips_image_pipelinev(im, VIPS_DEMAND_STYLE_ANY, NULL) ||
	    vips_image_generate(im, NULL, her2_fill_gen, NULL, (void *) handle, NULL)) {
		g_object_unref(im);
		return NULL;
	}
	return im;
}

/* Defined in Go (slide/vips.go). */
extern char *her2GoSource(uintptr_t handle, int x, int y, int w, int h, unsigned char *dst,
			  int stride);

static int her2_source_gen(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop)
{
	VipsRect *r = &out->valid;
	char *msg = her2GoSource((uintptr_t) a, r->left, r->top, r->width, r->height,
				 (unsigned char *) VIPS_REGION_ADDR(out, r->left, r->top),
				 (int) VIPS_REGION_LSKIP(out));
	if (msg) {
		vips_error("her2", "%s", msg);
		free(msg);
		return -1;
	}
	return 0;
}

VipsImage *her2_image_from_source(int width, int height, uintptr_t handle)
{
	VipsImage *im = vips_image_new();
	vips_image_init_fields(im, width, height, 3, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE,
			       VIPS_INTERPRETATION_sRGB, 1.0, 1.0);
	if (vips_image_pipelinev(im, VIPS_DEMAND_STYLE_SMALLTILE, NULL) ||
	    vips_image_generate(im, NULL, her2_source_gen, NULL, (void *) handle, NULL)) {
		g_object_unref(im);
		return NULL;
	}
	return im;
}

unsigned char *her2_decode_buffer(const void *buf, size_t len, int kind, int *w, int *h)
{
	VipsImage *im = NULL;
	int r;
	switch (kind) {
	case 1:
		r = vips_jpegload_buffer((void *) buf, len, &im, "access", VIPS_ACCESS_SEQUENTIAL,
					 "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	case 2:
		r = vips_jp2kload_buffer((void *) buf, len, &im, "access", VIPS_ACCESS_SEQUENTIAL,
					  "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		break;
	default:
		im = vips_image_new_from_buffer(buf, len, "", "fail_on", VIPS_FAIL_ON_WARNING, NULL);
		r = im == NULL;
	}
	if (r)
		return NULL;
	im = normalise(im);
	if (!im)
		return NULL;
	VipsRect all = {0, 0, im->Xsize, im->Ysize};
	VipsRegion *reg = vips_region_new(im);
	if (!reg || vips_region_prepare(reg, &all)) {
		if (reg)
			g_object_unref(reg);
		g_object_unref(im);
		return NULL;
	}
	size_t line = (size_t) all.width * 3;
	unsigned char *out = g_try_malloc(line * all.height);
	if (out)
		for (int row = 0; row < all.height; row++)
			memcpy(out + row * line, VIPS_REGION_ADDR(reg, 0, row), line);
	else
		vips_error("her2", "out of memory");
	*w = all.width;
	*h = all.height;
	g_object_unref(reg);
	g_object_unref(im);
	return out;
}

int her2_encode_j2k(const unsigned char *pix, int w, int h, void **buf, size_t *len)
{
	VipsImage *im = vips_image_new_from_memory(pix, (size_t) w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
	if (!im)
		return -1;
	int r = vips_jp2ksave_buffer(im, buf, len, "lossless", TRUE, NULL);
	g_object_unref(im);
	return r;
}

void her2_unref(VipsImage *im)
{
	if (im)
		g_object_unref(im);
}

int her2_error_pending(void)
{
	const char *s = vips_error_buffer();
	return s && *s;
}

int her2_read_many(VipsImage *im, const int *rects, int n, unsigned char *dst)
{
	for (int i = 0; i < n; i++)
		if (her2_read(im, rects[4 * i], rects[4 * i + 1], rects[4 * i + 2],
			      rects[4 * i + 3], dst))
			return -1;
	return 0;
}

/* Box-average f×f blocks of src (3 bytes per pixel, rows of lskip bytes,
 * f·w × f·h pixels) into dst (w × h, packed). */
static void box_reduce(const unsigned char *src, size_t lskip, int w, int h, int f,
		       unsigned char *dst)
{
	const unsigned int half = (unsigned int) (f * f) / 2, area = (unsigned int) (f * f);
	for (int oy = 0; oy < h; oy++) {
		const unsigned char *r0 = src + (size_t) oy * f * lskip;
		unsigned char *d = dst + (size_t) oy * w * 3;
		if (f == 2) {
			const unsigned char *r1 = r0 + lskip;
			for (int i = 0, o = 0; o < w * 3; i += 6, o += 3) {
				d[o] = (unsigned char) ((r0[i] + r0[i + 3] + r1[i] + r1[i + 3] + 2) >> 2);
				d[o + 1] = (unsigned char) ((r0[i + 1] + r0[i + 4] + r1[i + 1] + r1[i + 4] + 2) >> 2);
				d[o + 2] = (unsigned char) ((r0[i + 2] + r0[i + 5] + r1[i + 2] + r1[i + 5] + 2) >> 2);
			}
			continue;
		}
		for (int ox = 0; ox < w; ox++) {
			unsigned int s[3] = {0, 0, 0};
			for (int ky = 0; ky < f; ky++) {
				const unsigned char *p = r0 + ky * lskip + (size_t) ox * f * 3;
				for (int kx = 0; kx < f; kx++, p += 3) {
					s[0] += p[0];
					s[1] += p[1];
					s[2] += p[2];
				}
			}
			for (int c = 0; c < 3; c++)
				d[3 * ox + c] = (unsigned char) ((s[c] + half) / area);
		}
	}
}

int her2_read_box(VipsImage *im, int x, int y, int w, int h, int f, unsigned char *dst)
{
	int sw = w * f, sh = h * f;
	VipsRect want = {x, y, sw, sh};
	VipsRect whole = {0, 0, im->Xsize, im->Ysize};
	VipsRect in;
	vips_rect_intersectrect(&want, &whole, &in);
	if (!vips_rect_equalsrect(&in, &want)) {
		/* Off the edge: read with white fill into a scratch buffer. */
		unsigned char *tmp = g_try_malloc((size_t) sw * sh * 3);
		if (!tmp) {
			vips_error("her2", "out of memory");
			return -1;
		}
		int r = her2_read(im, x, y, sw, sh, tmp);
		if (!r)
			box_reduce(tmp, (size_t) sw * 3, w, h, f, dst);
		g_free(tmp);
		return r;
	}
	VipsRegion *reg = vips_region_new(im);
	if (!reg)
		return -1;
	if (vips_region_prepare(reg, &in)) {
		g_object_unref(reg);
		return -1;
	}
	box_reduce(VIPS_REGION_ADDR(reg, x, y), VIPS_REGION_LSKIP(reg), w, h, f, dst);
	g_object_unref(reg);
	return 0;
}

/* her2_jpeg encodes w×h RGB as a baseline JPEG with libjpeg(-turbo) on the
 * calling thread (vips_jpegsave_buffer hands the work to its thread pool,
 * which costs more than the encoding of a small tile). *out is malloc'd. */
struct her2_jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
};

static void her2_jpeg_exit(j_common_ptr c)
{
	longjmp(((struct her2_jpeg_err *)c->err)->jump, 1);
}

int her2_jpeg(const unsigned char *rgb, int w, int h, int quality, unsigned char **out, unsigned long *len)
{
	struct jpeg_compress_struct c;
	struct her2_jpeg_err e;
	*out = NULL;
	*len = 0;
	c.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = her2_jpeg_exit;
	if (setjmp(e.jump)) {
		jpeg_destroy_compress(&c);
		free(*out);
		*out = NULL;
		return -1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, out, len);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	return 0;
}

/* her2_jpeg_decode decodes a baseline/extended 8-bit JPEG held in memory with
 * libjpeg(-turbo) on the calling thread, straight into dst: dh rows of dw
 * packed RGB pixels (a larger image is cropped to that). The colour
 * transform is libjpeg's own choice (JFIF/Adobe markers, component ids), as
 * in libvips' jpegload, and the same defaults (islow DCT, fancy upsampling),
 * so the pixels equal jpegload's. Corrupt data fails, as jpegload does with
 * fail_on warning: libjpeg's first warning ends the decode. On failure the
 * message (at most JMSG_LENGTH_MAX bytes) is in msg. *w, *h: the JPEG's size. */
struct her2_jpeg_derr {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char *msg;
};

static void her2_jpeg_derr_exit(j_common_ptr c)
{
	struct her2_jpeg_derr *e = (struct her2_jpeg_derr *) c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jump, 1);
}

static void her2_jpeg_derr_emit(j_common_ptr c, int level)
{
	if (level < 0) /* a warning: corrupt data */
		her2_jpeg_derr_exit(c);
}

int her2_jpeg_decode(const unsigned char *buf, size_t len, unsigned char *dst, int dw, int dh,
		     int *w, int *h, char *msg)
{
	struct jpeg_decompress_struct d;
	struct her2_jpeg_derr e;
	unsigned char *volatile scratch = NULL;
	*w = *h = 0;
	msg[0] = 0;
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = her2_jpeg_derr_exit;
	e.pub.emit_message = her2_jpeg_derr_emit;
	e.msg = msg;
	if (setjmp(e.jump)) {
		jpeg_destroy_decompress(&d);
		free(scratch);
		return -1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, buf, (unsigned long) len);
	jpeg_read_header(&d, TRUE);
	if (d.num_components != 1 && d.num_components != 3) {
		snprintf(msg, JMSG_LENGTH_MAX, "%d-component JPEG (want RGB/YCbCr or grey)", d.num_components);
		jpeg_destroy_decompress(&d);
		return -1;
	}
	d.out_color_space = JCS_RGB;
	jpeg_start_decompress(&d);
	*w = (int) d.output_width;
	*h = (int) d.output_height;
	if (*w < dw || *h < dh || d.output_components != 3) {
		snprintf(msg, JMSG_LENGTH_MAX, "decodes as %dx%d, want at least %dx%d", *w, *h, dw, dh);
		jpeg_destroy_decompress(&d);
		return -1;
	}
	size_t line = (size_t) dw * 3;
	if (*w != dw && !(scratch = malloc((size_t) *w * 3 * 16))) {
		snprintf(msg, JMSG_LENGTH_MAX, "out of memory");
		jpeg_destroy_decompress(&d);
		return -1;
	}
	while ((int) d.output_scanline < dh) {
		JSAMPROW rows[16];
		int n = dh - (int) d.output_scanline;
		if (n > 16)
			n = 16;
		for (int i = 0; i < n; i++)
			rows[i] = scratch ? scratch + (size_t) i * *w * 3
					  : dst + (d.output_scanline + i) * line;
		int first = (int) d.output_scanline;
		int got = (int) jpeg_read_scanlines(&d, rows, n);
		if (got <= 0) {
			snprintf(msg, JMSG_LENGTH_MAX, "no scanlines after row %d", first);
			jpeg_destroy_decompress(&d);
			free(scratch);
			return -1;
		}
		if (scratch)
			for (int i = 0; i < got; i++)
				memcpy(dst + (size_t) (first + i) * line, scratch + (size_t) i * *w * 3, line);
	}
	if ((int) d.output_height > dh)
		jpeg_abort_decompress(&d);
	else
		jpeg_finish_decompress(&d);
	jpeg_destroy_decompress(&d);
	free(scratch);
	return 0;
}

void her2_box_reduce(const unsigned char *src, size_t lskip, int w, int h, int f, unsigned char *dst)
{
	box_reduce(src, lskip, w, h, f, dst);
}
