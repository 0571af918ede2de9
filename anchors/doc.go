// Package anchors will cluster patch grid positions into anchors and compute
// the distance and polar bins PAMA/IPCA use. Not built yet: see the anchors
// issue.
package anchors
