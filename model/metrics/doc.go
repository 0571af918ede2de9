// Package metrics evaluates HER2 predictions: accuracy, one-vs-rest ROC AUC
// (per class, macro and support-weighted), precision, recall and F1 (per
// class, macro and weighted), the confusion matrix, ROC curves and a PNG
// plot of them in the style of Fig. 3 of the IPCA paper. Standard library
// only.
//
// # Inputs
//
// labels[i] is the true class of case i, in [0, classes); probs[i] holds one
// score per class (probabilities in practice, but only their order matters:
// rows need not sum to 1, ±Inf is allowed, NaN is rejected). The predicted
// class is the argmax of the row, the first (lowest) class on ties.
//
// # Conventions
//
// They follow scikit-learn's defaults with zero_division=0:
//
//   - Accuracy is the fraction of cases whose predicted class is the label.
//   - Precision of a class that is never predicted is 0; recall of a class
//     with no support (absent from labels) is 0; F1 is
//     2·TP / (2·TP + FP + FN), 0 when that is 0/0 (equal to the harmonic mean
//     of precision and recall whenever both are defined).
//   - Macro-F1 averages F1 over the classes that occur in the labels OR in the
//     predictions (scikit-learn's default label set, the union of y_true and
//     y_pred); a class that occurs in neither is left out. Weighted-F1
//     weights each class's F1 by its support (number of true cases) and
//     divides by N.
//   - The AUC of a class is the one-vs-rest Mann–Whitney statistic on that
//     class's scores: the fraction of (positive, negative) pairs ranked
//     correctly, a tie counting 1/2. It equals the area under the ROC curve
//     whose tied scores form one diagonal step. It is undefined for a class
//     without positives (absent from the labels, e.g. from a fold) or without
//     negatives; such classes get a null AUC, are listed in UndefinedAUC and
//     are left out of MacroAUC (the plain mean over the defined classes) and
//     WeightedAUC (weighted by support over the defined classes). When no
//     class is defined both are NaN, written as null in JSON.
//   - Confusion is indexed [true][predicted].
//
// # ROC curves
//
// ROC returns the curve from (0,0) to (1,1) with one point per distinct
// score (thresholds from high to low), so a group of tied scores that holds
// both positives and negatives is a single diagonal segment. MacroROC is
// scikit-learn's documented macro-average recipe: take the union of the FPR
// points of the defined per-class curves, interpolate each curve linearly at
// every one of them (at an FPR where a curve rises vertically, the upper
// point, like numpy.interp), and average the TPRs. Its area (Area) is in
// general not exactly MacroAUC, the mean of the per-class areas; the plot's
// legend reports MacroAUC, the number in metrics.json.
//
// # Files
//
// WritePNG and WriteJSON write atomically: a temporary file in the same
// directory (".<base>.tmp-<16 hex digits>", the project's temporary-file
// pattern), fsync, rename, fsync of the directory; the temporary file is
// removed on error.
package metrics
