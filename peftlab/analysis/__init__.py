"""Analysis tools the notebooks use: singular-value spectra of weight updates (:mod:`peftlab.analysis.svd`),
magnitude/direction decomposition of weights and DoRA's ΔM/ΔD analysis (:mod:`peftlab.analysis.decompose`),
and training-memory estimates for full fine-tuning, LoRA and QLoRA (:mod:`peftlab.analysis.memory`)."""
