"""Evaluation: image-quality metrics, paired/unpaired testing and variant comparisons.

- ``methods``: what is evaluated (a model, or a baseline: input, auto-exposure, CLAHE, Zero-DCE via ``zerodce``);
- ``metrics``, ``lpips``, ``niqe``: the scores; ``tone``: brightness apart from detail;
- ``paired``: one method on paired images (``darkir test``); ``unpaired``: no-reference sets (``darkir test-unpaired``);
- ``compare``: variants side by side (``darkir compare``), summarized by ``stats`` (bootstrap intervals, win rates)
  into the files ``reports`` writes.
"""
