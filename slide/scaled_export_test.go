package slide

// ReadScaledWhole is the scaled read with whole tiles decoded, for the test
// that the cropped decode gives the same pixels.
var ReadScaledWhole = (*Slide).readScaledWhole
