"""Named entity recognition: readers (CSV, CoNLL, brat, raw text), windows and document context,
featurization, decoding, evaluation and prediction."""
