"""Evaluation: image-quality metrics, paired/unpaired testing and variant comparisons.

- ``methods``: what is evaluated (a model, or a baseline: input, auto-exposure, CLAHE, Zero-DCE via ``zerodce``);
- ``metrics``, ``lpips``, ``niqe``: the scores; ``tone``: brightness apart from detail;
- ``noreference``: the no-reference scores of images without references (NIQE, brightness, noise), their CSV rows and
  summary lines (``darkir metrics FOLDER``);
- ``paired``: one method on paired images (``darkir test``); ``unpaired``: an unpaired set restored into a results
  folder and scored in and out (``darkir test-unpaired``);
- ``compare`` and ``compare_unpaired``: variants side by side on paired and unpaired sets (``darkir compare``,
  ``--unpaired``), summarized by ``stats`` (bootstrap intervals, win rates) into the files ``reports`` writes.
"""
