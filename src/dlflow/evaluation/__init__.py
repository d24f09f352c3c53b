"""Framework-free evaluation helpers: metrics (``metrics``), matplotlib figures (``plots``),
word-vector benchmarks (``word_vectors``) and the champion-vs-challenger report
(``promotion_report``). Import from the submodule you need: the figures pull in
matplotlib, which a run that draws nothing should not pay for."""
