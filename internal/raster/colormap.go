package raster

import (
	"image/color"
	"math"
)

// viridisStops are matplotlib's viridis at 0, 1/9, …, 1 (the ten colours
// viridisLite::viridis(10) lists).
var viridisStops = [...]color.RGBA{
	{68, 1, 84, 255}, {72, 40, 120, 255}, {62, 74, 137, 255}, {49, 104, 142, 255}, {38, 130, 142, 255},
	{31, 158, 137, 255}, {53, 183, 121, 255}, {109, 205, 89, 255}, {180, 222, 44, 255}, {253, 231, 37, 255},
}

// Viridis maps t in [0,1] (clamped; NaN as 0) to matplotlib's viridis
// colour map, interpolated linearly between ten stops: dark violet through
// blue and green to yellow, its lightness rising steadily, so that order
// reads the same in grey and to colour-blind eyes.
func Viridis(t float64) color.RGBA {
	if !(t > 0) {
		t = 0
	}
	t = math.Min(1, t) * float64(len(viridisStops)-1)
	i := min(int(t), len(viridisStops)-2)
	return Mix(viridisStops[i], viridisStops[i+1], t-float64(i))
}
