"""``ablate bench``: ablate's speed side by side with what researchers would use instead, on this machine, in one run.

One file per measurement (the function that measures), run in the order of ``SECTIONS`` by ``ablate.bench.suite``
(what they share: ``ablate.bench.measure``); each is a dict in ``bench.json`` and a section of ``bench.md``, which
one Jinja2 template writes (``templates/bench.md.j2``):

1. ``step``: one training step of ablate's DeepLabv3 vs torchvision's and smp's (``ablate.bench.step``);
2. ``loop``: the whole training loop vs a bare PyTorch loop (``ablate.bench.loop``);
3. ``study``: a study's wall time vs its runs (``ablate.bench.study``);
4. ``flops``: achieved FLOP/s vs the GEMM peak, fp32 and bf16 (``ablate.bench.flops``);
5. ``metrics``/``crf``: the metric update vs torchmetrics (``ablate.bench.metrics``), the CRF pool's speed-up
   (``ablate.bench.crf``);
6. ``load``: sharing the machine: two studies at once, and ``-j 2`` vs ``-j 1`` (``ablate.bench.machine_load``).

Timings are the best of ``repeats`` (the least disturbed by other load) unless a section says otherwise; the
machine's load average is recorded before and after.
"""
