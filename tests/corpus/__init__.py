"""The generated benign corpus (see build.py): every file scans clean and loads back equal."""
