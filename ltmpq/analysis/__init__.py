"""Every number a chapter glues, tabulates or judges, one module per chapter.

========================  ==========================================================
module                    chapter
========================  ==========================================================
``ch0_introduction``      0: data, splits and profiles
``ch1_evaluation``        1: does overall accuracy hide the head/tail gap?
``ch2_decoupling``        2: do cRT, tau-norm, LWS and NCM close it?
``ch3_quantization``      3: do fewer bits hurt the tail more?
``ch4_mitigation``        4: does tail-aware mixed precision win it back?
========================  ==========================================================

Each takes stored results or the tidy frames of :mod:`ltmpq.frames` and returns frames for
tables and figures, or ``{glue name: text}`` dicts for the prose. A later chapter reuses an
earlier chapter's functions; the verdicts on the blog's claims are in :mod:`ltmpq.claims`.
"""
