// Package model will hold the IPCA model (and its baselines) in GoMLX:
// training, evaluation and H&E-only prediction. Not built yet: see the model
// issue.
package model
