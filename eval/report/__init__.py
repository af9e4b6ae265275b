"""Reports over recorded runs: the data model, terminal tables, plots, HTML and Markdown.

Modules, each importing only those above it (no cycles, none inside functions either)::

    model     runs loaded, scored and paired; asks benchmark specs, never names a benchmark
    rows      table rows shared by the page and the summary           (model)
    plots     matplotlib figures as SVG data URIs                     (model)
    tables    terminal tables printed after ``poise run``             (model)
    html      the page, from templates/ with Jinja2                   (model, rows, plots)
    markdown  the summary beside the page                             (model, rows)
    build     ``build_report``: load, draw, render, write              (model, plots, html, markdown)
"""
