"""The `mtqa` console command and the demo: the only package that imports every layer."""
