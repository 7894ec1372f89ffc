"""The BoxPromptIML reference protocol (v2): in-domain box training, real test sets, baselines, ablations.

Training: ``casia1_train`` minus a source-disjoint validation part (``bpiml split``, 15%, seed 0),
boxes simulated from its masks, targets from the run's teacher; COVERAGE train (70 copy-moves,
simulated boxes) and its 70 authentic originals. Validation (checkpoint choice only): the
carved-out CASIA part. Test sets, never used to choose anything: ``casia1_dev`` (test +
authentic) and COVERAGE test (+ the authentic originals 71-100).

Modules, one per step: ``layout`` (folders, test sets), ``data`` (split, boxes, pseudo masks),
``runs`` (the table of runs and their configs), ``train_eval`` (training and test scores),
``record`` (the committed record of evaluated runs), ``report`` (docs/results.md section and
figures), ``ship`` (the shipped model and its image-level threshold).

    python -m benchmarks.protocol --stages data pseudo              # prepare runs/v2 (about 15 min)
    python -m benchmarks.protocol --stages train eval --runs method --threads 1   # one row
    python -m benchmarks.protocol --stages report                   # table, curves, docs/results.md
    python -m benchmarks.protocol --stages ship                     # best box-trained run by validation F1
"""
