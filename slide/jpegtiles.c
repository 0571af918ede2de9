/* Scaled decoding of tiled JPEG TIFF pages with libjpeg-turbo: the raw tile
 * bytes (pread at the offsets of the page's tile index) are decoded at 1/f
 * scale in the DCT domain, with the page's JPEGTables loaded first (an
 * abbreviated datastream, as libtiff does it). See shim.h. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <jpeglib.h>
#include "shim.h"

her2_jtiles *her2_jtiles_new(int fd, const int64_t *offs, const int64_t *cnts, int ntiles,
			     int across, int down, int tw, int th, int iw, int ih,
			     const unsigned char *tables, size_t tlen, int rgb)
{
	her2_jtiles *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->offs = malloc(sizeof(int64_t) * (size_t) ntiles);
	t->cnts = malloc(sizeof(int64_t) * (size_t) ntiles);
	t->tables = tlen ? malloc(tlen) : NULL;
	if (!t->offs || !t->cnts || (tlen && !t->tables)) {
		her2_jtiles_free(t);
		return NULL;
	}
	memcpy(t->offs, offs, sizeof(int64_t) * (size_t) ntiles);
	memcpy(t->cnts, cnts, sizeof(int64_t) * (size_t) ntiles);
	if (tlen)
		memcpy(t->tables, tables, tlen);
	t->tlen = tlen;
	t->fd = fd;
	t->across = across;
	t->down = down;
	t->tw = tw;
	t->th = th;
	t->iw = iw;
	t->ih = ih;
	t->rgb = rgb;
	return t;
}

void her2_jtiles_free(her2_jtiles *t)
{
	if (!t)
		return;
	free(t->offs);
	free(t->cnts);
	free(t->tables);
	free(t);
}

/* libjpeg errors longjmp out; warnings (corrupt data, premature end) are
 * remembered and fail the read too. */
struct her2_derr {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	int warnings;
	char msg[JMSG_LENGTH_MAX];
};

static void her2_derr_exit(j_common_ptr c)
{
	struct her2_derr *e = (struct her2_derr *) c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jump, 1);
}

static void her2_derr_emit(j_common_ptr c, int level)
{
	struct her2_derr *e = (struct her2_derr *) c->err;
	if (level >= 0)
		return; /* trace messages */
	if (!e->warnings)
		(*c->err->format_message)(c, e->msg);
	e->warnings++;
}

static char *fail(const char *fmt, int a, int b, const char *detail)
{
	char buf[JMSG_LENGTH_MAX + 128];
	snprintf(buf, sizeof buf, fmt, a, b, detail ? detail : "");
	return strdup(buf);
}

static char *tile_msg(int tile, const char *what, const char *detail)
{
	char buf[JMSG_LENGTH_MAX + 128];
	snprintf(buf, sizeof buf, "jpeg tile %d: %s%s", tile, what, detail);
	return strdup(buf);
}

static int read_full(int fd, unsigned char *buf, size_t n, int64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t) (off + (int64_t) got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t) r;
	}
	return 0;
}

/* Set up a decompressor with the page's tables loaded. */
static void load_tables(struct jpeg_decompress_struct *c, const her2_jtiles *t)
{
	if (t->tlen) {
		jpeg_mem_src(c, t->tables, (unsigned long) t->tlen);
		jpeg_read_header(c, FALSE); /* tables only */
	}
}

static void start_tile(struct jpeg_decompress_struct *c, const her2_jtiles *t,
		       const unsigned char *buf, size_t len, int f)
{
	jpeg_mem_src(c, buf, (unsigned long) len);
	jpeg_read_header(c, TRUE);
	if (t->rgb)
		c->jpeg_color_space = JCS_RGB;
	c->out_color_space = JCS_RGB;
	c->scale_num = 1;
	c->scale_denom = (unsigned int) f;
	c->dct_method = JDCT_ISLOW;
	jpeg_start_decompress(c);
}

int her2_read_scaled(const her2_jtiles *t, int x, int y, int w, int h, int f, int crop,
		     unsigned char *dst, char **msg)
{
	struct jpeg_decompress_struct c;
	struct her2_derr e;
	unsigned char *volatile buf = NULL;
	unsigned char *volatile row = NULL;
	volatile size_t bufcap = 0, rowcap = 0;
	volatile int tile = -1;
	*msg = NULL;
	if (f < 1 || f > 8 || (f & (f - 1)) || x % f || y % f || t->tw % f || t->th % f ||
	    x < 0 || y < 0 || w <= 0 || h <= 0 || x + f * w > t->iw || y + f * h > t->ih) {
		*msg = fail("scaled read of %d,%d%s: region not inside the page or not aligned", x, y, NULL);
		return -1;
	}
	memset(&c, 0, sizeof c);
	c.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = her2_derr_exit;
	e.pub.emit_message = her2_derr_emit;
	e.warnings = 0;
	e.msg[0] = 0;
	if (setjmp(e.jump)) {
		*msg = tile_msg(tile, "", e.msg);
		jpeg_destroy_decompress(&c);
		free(buf);
		free(row);
		return -1;
	}
	jpeg_create_decompress(&c);
	load_tables(&c, t);
	/* The region in scaled pixels. */
	const int sx0 = x / f, sy0 = y / f, sx1 = sx0 + w, sy1 = sy0 + h;
	const int stw = t->tw / f, sth = t->th / f;
	for (int ty = sy0 / sth; ty <= (sy1 - 1) / sth; ty++) {
		for (int tx = sx0 / stw; tx <= (sx1 - 1) / stw; tx++) {
			tile = ty * t->across + tx;
			if (tx >= t->across || ty >= t->down || t->cnts[tile] <= 0) {
				*msg = fail("tile %d (column %d): missing", tile, tx, NULL);
				goto failed;
			}
			size_t len = (size_t) t->cnts[tile];
			if (len > bufcap) {
				free(buf);
				bufcap = len;
				buf = malloc(bufcap);
				if (!buf) {
					bufcap = 0;
					*msg = strdup("out of memory");
					goto failed;
				}
			}
			if (read_full(t->fd, buf, len, t->offs[tile])) {
				*msg = fail("tile %d: read of %d bytes failed%s", tile, (int) len, NULL);
				goto failed;
			}
			start_tile(&c, t, buf, len, f);
			if ((int) c.output_width != stw || (int) c.output_height != sth || c.output_components != 3) {
				*msg = fail("tile %d decodes as %d columns, not the tile's%s", tile, (int) c.output_width, NULL);
				jpeg_abort_decompress(&c);
				goto failed;
			}
			/* The part of this tile inside the region, in tile pixels. */
			int c0 = (sx0 > tx * stw ? sx0 - tx * stw : 0);
			int c1 = (sx1 < (tx + 1) * stw ? sx1 - tx * stw : stw);
			int r0 = (sy0 > ty * sth ? sy0 - ty * sth : 0);
			int r1 = (sy1 < (ty + 1) * sth ? sy1 - ty * sth : sth);
			JDIMENSION xoff = 0, cw = (JDIMENSION) stw;
			if (crop && (c0 > 0 || c1 < stw)) {
				xoff = (JDIMENSION) c0;
				cw = (JDIMENSION) (c1 - c0);
				jpeg_crop_scanline(&c, &xoff, &cw);
			}
			size_t need = (size_t) c.output_width * 3;
			if (need > rowcap) {
				free(row);
				rowcap = need;
				row = malloc(rowcap);
				if (!row) {
					rowcap = 0;
					*msg = strdup("out of memory");
					jpeg_abort_decompress(&c);
					goto failed;
				}
			}
			if (crop && r0 > 0)
				jpeg_skip_scanlines(&c, (JDIMENSION) r0);
			const int dx = tx * stw + c0 - sx0; /* destination column */
			const size_t ncopy = (size_t) (c1 - c0) * 3;
			const size_t src0 = (size_t) (c0 - (int) xoff) * 3;
			while ((int) c.output_scanline < r1) {
				int r = (int) c.output_scanline;
				JSAMPROW rp = row;
				if (jpeg_read_scanlines(&c, &rp, 1) != 1) {
					*msg = fail("tile %d: short read at row %d%s", tile, r, NULL);
					jpeg_abort_decompress(&c);
					goto failed;
				}
				if (r < r0)
					continue;
				memcpy(dst + ((size_t) (ty * sth + r - sy0) * w + dx) * 3, row + src0, ncopy);
			}
			if ((int) c.output_scanline < sth)
				jpeg_abort_decompress(&c);
			else
				jpeg_finish_decompress(&c);
			if (e.warnings) {
				*msg = tile_msg(tile, "corrupt data: ", e.msg);
				goto failed;
			}
		}
	}
	jpeg_destroy_decompress(&c);
	free(buf);
	free(row);
	return 0;
failed:
	jpeg_destroy_decompress(&c);
	free(buf);
	free(row);
	return -1;
}

int her2_decode_tiles_bare(const her2_jtiles *t, unsigned char **bufs, const size_t *lens, int n,
			   int f, char **msg)
{
	struct jpeg_decompress_struct c;
	struct her2_derr e;
	unsigned char *volatile row = NULL;
	*msg = NULL;
	memset(&c, 0, sizeof c);
	c.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = her2_derr_exit;
	e.pub.emit_message = her2_derr_emit;
	e.warnings = 0;
	if (setjmp(e.jump)) {
		*msg = strdup(e.msg);
		jpeg_destroy_decompress(&c);
		free(row);
		return -1;
	}
	jpeg_create_decompress(&c);
	load_tables(&c, t);
	row = malloc((size_t) t->tw * 3);
	for (int i = 0; i < n && row; i++) {
		start_tile(&c, t, bufs[i], lens[i], f);
		JSAMPROW rp = row;
		while (c.output_scanline < c.output_height)
			jpeg_read_scanlines(&c, &rp, 1);
		jpeg_finish_decompress(&c);
	}
	jpeg_destroy_decompress(&c);
	int r = row ? 0 : -1;
	if (!row)
		*msg = strdup("out of memory");
	free(row);
	return r;
}

/* The same tiles through libvips instead (vips_jpegload_buffer with
 * "shrink" f, which uses libjpeg's DCT scaling too): each tile's bytes with
 * the page's tables merged in (tables without their EOI, tile without its
 * SOI), decoded whole into memory. For the benchmark that chose between the
 * two. */
int her2_decode_tiles_vips(const her2_jtiles *t, unsigned char **bufs, const size_t *lens, int n, int f)
{
	unsigned char *m = NULL;
	size_t cap = 0;
	for (int i = 0; i < n; i++) {
		size_t th = t->tlen >= 4 ? t->tlen - 2 : 0;
		size_t len = th + lens[i] - (th ? 2 : 0);
		if (len > cap) {
			free(m);
			cap = len;
			if (!(m = malloc(cap))) {
				vips_error("her2", "out of memory");
				return -1;
			}
		}
		if (th) {
			memcpy(m, t->tables, th);
			memcpy(m + th, bufs[i] + 2, lens[i] - 2);
		} else
			memcpy(m, bufs[i], lens[i]);
		VipsImage *im = NULL;
		if (vips_jpegload_buffer(m, len, &im, "shrink", f, "access", VIPS_ACCESS_SEQUENTIAL, NULL)) {
			free(m);
			return -1;
		}
		size_t sz = 0;
		void *px = vips_image_write_to_memory(im, &sz);
		g_object_unref(im);
		if (!px) {
			free(m);
			return -1;
		}
		g_free(px);
	}
	free(m);
	return 0;
}
