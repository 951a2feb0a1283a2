"""Analysis tools the notebooks use: singular-value spectra of weight updates (:mod:`peftlab.analysis.svd`)."""
