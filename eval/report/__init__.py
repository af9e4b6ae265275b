"""Reports over recorded runs: the data model, terminal tables, plots, HTML and Markdown."""
