package raster

import (
	"image"
	"image/color"
	"strings"
)

// A small 5×8 bitmap font for the labels drawn on the project's pictures
// (the ROC plot, the QC picture, the heatmap): printable ASCII and 'µ';
// anything else is drawn as '?'. Each glyph is up to 8 rows of 5 cells, '#'
// set, rows separated by spaces; rows 0–6 hold capitals and digits, row 7
// descenders.
const (
	GlyphW   = 5
	GlyphH   = 8
	Advance  = GlyphW + 1 // horizontal cell, in font pixels
	LineStep = GlyphH + 2 // vertical cell, in font pixels
)

var glyphSrc = map[rune]string{
	' ':  "",
	'!':  "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
	'"':  ".#.#. .#.#.",
	'#':  ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
	'$':  "..#.. .#### #.#.. .###. ..#.# ####. ..#..",
	'%':  "##... ##..# ...#. ..#.. .#... #..## ...##",
	'&':  ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#",
	'\'': "..#.. ..#..",
	'(':  "...#. ..#.. .#... .#... .#... ..#.. ...#.",
	')':  ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
	'*':  "..... ..#.. #.#.# .###. #.#.# ..#..",
	'+':  "..... ..#.. ..#.. ##### ..#.. ..#..",
	',':  "..... ..... ..... ..... ..... .##.. ..#.. .#...",
	'-':  "..... ..... ..... #####",
	'.':  "..... ..... ..... ..... ..... .##.. .##..",
	'/':  "..... ....# ...#. ..#.. .#... #....",
	'0':  ".###. #...# #..## #.#.# ##..# #...# .###.",
	'1':  "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
	'2':  ".###. #...# ....# ...#. ..#.. .#... #####",
	'3':  "##### ...#. ..#.. ...#. ....# #...# .###.",
	'4':  "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
	'5':  "##### #.... ####. ....# ....# #...# .###.",
	'6':  "..##. .#... #.... ####. #...# #...# .###.",
	'7':  "##### ....# ...#. ..#.. .#... .#... .#...",
	'8':  ".###. #...# #...# .###. #...# #...# .###.",
	'9':  ".###. #...# #...# .#### ....# ...#. .##..",
	':':  "..... .##.. .##.. ..... .##.. .##..",
	';':  "..... .##.. .##.. ..... .##.. ..#.. .#...",
	'<':  "...#. ..#.. .#... #.... .#... ..#.. ...#.",
	'=':  "..... ..... ##### ..... #####",
	'>':  ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
	'?':  ".###. #...# ....# ...#. ..#.. ..... ..#..",
	'@':  ".###. #...# ....# .##.# #.#.# #.#.# .###.",
	'A':  ".###. #...# #...# ##### #...# #...# #...#",
	'B':  "####. #...# #...# ####. #...# #...# ####.",
	'C':  ".###. #...# #.... #.... #.... #...# .###.",
	'D':  "###.. #..#. #...# #...# #...# #..#. ###..",
	'E':  "##### #.... #.... ####. #.... #.... #####",
	'F':  "##### #.... #.... ####. #.... #.... #....",
	'G':  ".###. #...# #.... #.### #...# #...# .####",
	'H':  "#...# #...# #...# ##### #...# #...# #...#",
	'I':  ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
	'J':  "..### ...#. ...#. ...#. ...#. #..#. .##..",
	'K':  "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
	'L':  "#.... #.... #.... #.... #.... #.... #####",
	'M':  "#...# ##.## #.#.# #.#.# #...# #...# #...#",
	'N':  "#...# #...# ##..# #.#.# #..## #...# #...#",
	'O':  ".###. #...# #...# #...# #...# #...# .###.",
	'P':  "####. #...# #...# ####. #.... #.... #....",
	'Q':  ".###. #...# #...# #...# #.#.# #..#. .##.#",
	'R':  "####. #...# #...# ####. #.#.. #..#. #...#",
	'S':  ".#### #.... #.... .###. ....# ....# ####.",
	'T':  "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
	'U':  "#...# #...# #...# #...# #...# #...# .###.",
	'V':  "#...# #...# #...# #...# #...# .#.#. ..#..",
	'W':  "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
	'X':  "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
	'Y':  "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
	'Z':  "##### ....# ...#. ..#.. .#... #.... #####",
	'[':  ".###. .#... .#... .#... .#... .#... .###.",
	'\\': "..... #.... .#... ..#.. ...#. ....#",
	']':  ".###. ...#. ...#. ...#. ...#. ...#. .###.",
	'^':  "..#.. .#.#. #...#",
	'_':  "..... ..... ..... ..... ..... ..... #####",
	'`':  ".#... ..#..",
	'a':  "..... ..... .###. ....# .#### #...# .####",
	'b':  "#.... #.... #.##. ##..# #...# #...# ####.",
	'c':  "..... ..... .###. #.... #.... #...# .###.",
	'd':  "....# ....# .##.# #..## #...# #...# .####",
	'e':  "..... ..... .###. #...# ##### #.... .###.",
	'f':  "..##. .#..# .#... ###.. .#... .#... .#...",
	'g':  "..... ..... .#### #...# #...# .#### ....# .###.",
	'h':  "#.... #.... #.##. ##..# #...# #...# #...#",
	'i':  "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
	'j':  "...#. ..... ..##. ...#. ...#. ...#. #..#. .##..",
	'k':  "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
	'l':  ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
	'm':  "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#",
	'n':  "..... ..... #.##. ##..# #...# #...# #...#",
	'o':  "..... ..... .###. #...# #...# #...# .###.",
	'p':  "..... ..... ####. #...# #...# ####. #.... #....",
	'q':  "..... ..... .#### #...# #...# .#### ....# ....#",
	'r':  "..... ..... #.##. ##..# #.... #.... #....",
	's':  "..... ..... .###. #.... .###. ....# ####.",
	't':  ".#... .#... ###.. .#... .#... .#..# ..##.",
	'u':  "..... ..... #...# #...# #...# #..## .##.#",
	'v':  "..... ..... #...# #...# #...# .#.#. ..#..",
	'w':  "..... ..... #...# #...# #.#.# #.#.# .#.#.",
	'x':  "..... ..... #...# .#.#. ..#.. .#.#. #...#",
	'y':  "..... ..... #...# #...# #...# .#### ....# .###.",
	'z':  "..... ..... ##### ...#. ..#.. .#... #####",
	'{':  "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#.",
	'|':  "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
	'}':  ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#...",
	'~':  "..... ..... .#... #.#.# ...#.",
}

// extraGlyphs are the glyphs beyond ASCII, in the same notation.
var extraGlyphs = map[rune]string{
	'µ': "..... ..... #...# #...# #...# ##..# #.##. #....",
}

// glyph is a parsed glyph: bit (4-x) of row y is cell (x, y).
type glyph [GlyphH]uint8

// glyphs holds the parsed ASCII font, indexed by rune-' '; extra the rest.
var glyphs, extra = parseFont()

func parseFont() (g ['~' - ' ' + 1]glyph, extra map[rune]*glyph) {
	extra = map[rune]*glyph{}
	for r, src := range glyphSrc {
		g[r-' '] = parseGlyph(r, src)
	}
	for r, src := range extraGlyphs {
		gl := parseGlyph(r, src)
		extra[r] = &gl
	}
	return g, extra
}

func parseGlyph(r rune, src string) (g glyph) {
	rows := strings.Fields(src)
	if len(rows) > GlyphH {
		panic("raster: font: too many rows for " + string(r))
	}
	for y, row := range rows {
		if len(row) != GlyphW {
			panic("raster: font: bad row width for " + string(r))
		}
		for x := range GlyphW {
			switch row[x] {
			case '#':
				g[y] |= 1 << (GlyphW - 1 - x)
			case '.':
			default:
				panic("raster: font: bad cell for " + string(r))
			}
		}
	}
	return g
}

func glyphOf(r rune) *glyph {
	if g, ok := extra[r]; ok {
		return g
	}
	if r < ' ' || r > '~' {
		r = '?'
	}
	return &glyphs[r-' ']
}

// TextWidth returns the width in pixels of s drawn at scale (no trailing gap).
func TextWidth(s string, scale int) int {
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return (n*Advance - 1) * scale
}

// TextHeight is the height in pixels of a line drawn at scale, descenders
// included.
func TextHeight(scale int) int { return GlyphH * scale }

// DrawText draws s with its top-left corner at (x, y), each font pixel a
// scale×scale square; bold adds a copy one pixel to the right.
func DrawText(c Canvas, x, y int, s string, scale int, col color.RGBA, bold bool) {
	for _, r := range s {
		g := glyphOf(r)
		for gy := range GlyphH {
			for gx := range GlyphW {
				if g[gy]&(1<<(GlyphW-1-gx)) == 0 {
					continue
				}
				w := scale
				if bold {
					w++
				}
				FillRect(c, image.Rect(x+gx*scale, y+gy*scale, x+gx*scale+w, y+(gy+1)*scale), col)
			}
		}
		x += Advance * scale
	}
}

// DrawTextUp draws s rotated 90° counter-clockwise (reading bottom to top)
// with the bottom-left of its first glyph's upright box at (x, y): the text
// occupies x..x+lineHeight and runs upwards from y.
func DrawTextUp(c Canvas, x, y int, s string, scale int, col color.RGBA) {
	for _, r := range s {
		g := glyphOf(r)
		for gy := range GlyphH {
			for gx := range GlyphW {
				if g[gy]&(1<<(GlyphW-1-gx)) == 0 {
					continue
				}
				// Upright (gx, gy) maps to (gy, -gx) after the rotation.
				px, py := x+gy*scale, y-(gx+1)*scale
				FillRect(c, image.Rect(px, py, px+scale, py+scale), col)
			}
		}
		y -= Advance * scale
	}
}
