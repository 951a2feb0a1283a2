"""Instructor tools: build student notebooks, execute notebooks, grade submissions.

* :mod:`peftlab.instructor.notebook` — cell roles, markers, deterministic I/O (shared helpers)
* :mod:`peftlab.instructor.student` — solution notebook -> student notebook
* :mod:`peftlab.instructor.execute` — headless execution (``peftlab run`` / ``peftlab execute``)

Submodules are imported on demand so that ``import peftlab.instructor`` stays cheap.
"""
