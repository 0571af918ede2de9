// Package anchors computes the slide geometry the PAMA/IPCA model reads:
// grid positions of the patches, anchors ("kernels": the real patches
// nearest the k-means centroids of the grid positions, for each
// patches-per-anchor value), the slide diameter, and the distance and polar
// bins from anchors to patches, computed when needed for the anchors and
// patches actually used. It also loads the per-slide bundle (features,
// anchors, bins) the model trains on, streaming from the work folder.
//
// The binning follows the reference code: bin width = diameter / 64,
// distance bin = ⌊d / width⌋ (0..64, embedding table of 66 rows); polar bin
// = ⌊atan2(Δcol, Δrow) / (π/4)⌋ + 4 with θ = π in bin 7. k-means uses
// k-means++ seeding and 10 Lloyd iterations with seed 2024, as the reference
// does; its generator is not scikit-learn's, so the anchors themselves
// differ from a reference run while following the same rule.
package anchors
