"""Analysis tools the notebooks use: singular-value spectra of weight updates (:mod:`peftlab.analysis.svd`) and
training-memory estimates for full fine-tuning, LoRA and QLoRA (:mod:`peftlab.analysis.memory`)."""
