"""The model's named choices, importable without torch so that `textcnn --help` answers at once.

Kim (2014)'s four embedding variants (section 3.2): rand (random vectors, trained), static
(pretrained, frozen), non-static (pretrained, tuned) and multichannel (a frozen and a tuned copy,
each filter applied to both). An ensemble's linear member (`textcnn.model.linear_member`) and how
a mixed ensemble combines its members (`textcnn.model.mixed`)."""

VARIANTS = ("rand", "static", "non-static", "multichannel")
LINEAR_KINDS = ("nbsvm", "tfidf-lr", "char-lr")
COMBINE_METHODS = ("mean", "dev")

# Multi-label data: how the thresholds that decide a text's labels are chosen on dev
# (textcnn.inference.decisions), and the dev rows a label needs for a threshold of its own.
THRESHOLD_MODES = ("per-label", "global")
MIN_SUPPORT = 30
