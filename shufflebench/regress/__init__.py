"""CI regression gate: did a change make a model slower, or change what it computes?

* `proxies`  -- exact, noise-free proxies of a model (multiply-adds, params, MAC, onnxruntime kernels, guideline
  findings), the baseline file that stores them, and their exact diff;
* `decide`   -- the latency verdict: ratio of medians, paired bootstrap CI, minimum detectable effect (pure functions);
* `gate`     -- one `regress` run: proxies compared, latency measured interleaved and judged, one exit code;
* `request`  -- what the user asked for (a model, a revision, a baseline file, the zoo), resolved into models;
* `baseline` -- ``baseline save``: the file `regress --baseline` compares with;
* `gitrev`   -- ``--against-rev``: a ``package.module:callable`` as it was at another git revision.
"""
