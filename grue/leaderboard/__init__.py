"""The GRUE leaderboard: submissions by pull request, validated, built into a static site.

Modules, in the order data flows: ``paths`` (the folders to use when none is given),
``files`` (reading untrusted folders safely), ``submissions`` (submission folders and their
rules), ``provenance`` (the ``benchmark`` block of submission.yaml, checked against the
results), ``reported`` (the paper's numbers), ``aggregate`` (rows, mean ± std over seeds, the
overall score), ``scrub`` (local paths kept off the site), ``board`` (everything a page
shows), ``site`` (HTML), ``export`` (Markdown, CSV), ``charts`` (SVG) and ``build`` (writes
the site). How to submit and the score's formula: leaderboard/README.md.
"""
