"""Tooling around the study, not the study itself: executing chapters (:mod:`.execute`), checking
the built book in a browser (:mod:`.bookcheck`), the benchmark (:mod:`.bench`) and the glue-value
comparison of two book builds (:mod:`.gluecheck`). Chapters never import these."""
