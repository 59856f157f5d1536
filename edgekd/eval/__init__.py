"""Evaluation, device-safe (numpy and the runtime only; it runs on a board as well as on the host).

``matching`` (hit windows, detection replay: the one definition), ``kws`` (clip accuracy), ``tune`` (post-processing
sweep), ``wakeword`` (FRR at FA/h over streams), ``sed_metrics`` (event F1, PSDS) and ``sed`` (a SED bundle on files).
"""
