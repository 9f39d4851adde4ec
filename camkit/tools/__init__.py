"""Tools built on camkit's public engine.

- :mod:`camkit.tools.batch`: explaining folders of images, with safe output names, batching
  and a CSV report (:func:`~camkit.tools.batch.explain_files`);
- :mod:`camkit.tools.html_report`: the page of a folder run, with thumbnails, sorting and
  filters (:func:`~camkit.tools.html_report.write_html_report`, ``camkit explain --html``);
- :mod:`camkit.tools.stream`: the worker threads of folder runs, an ordered, bounded thread
  map that stops cleanly;
- :mod:`camkit.tools.output`: the one output writer every file goes through (no overwrite
  unless asked, never through a symbolic link, neutral CSV cells, clean disk-full errors);
- :mod:`camkit.tools.cli`: the ``camkit`` command (``explain``, ``layers``, ``demo``,
  ``evaluate``, ``plugins``), also run as ``python -m camkit.tools.cli``.

The package imports none of them: ``import camkit`` loads the batch tool only when the seed
functions are first used, and never the command line.
"""
