// Package features will embed patches with an ONNX encoder (PLIP ViT-B/32
// by default) and read/write CLAM/TRIDENT feature files. Not built yet: see
// the embedding issue.
package features
