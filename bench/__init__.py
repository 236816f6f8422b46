"""The benchmarks: `python -m bench` lists them, `python -m bench NAME [ARGS...]` runs one (bench/__main__.py).

Not part of the wheel (pyproject's packages.find names videoapi, functions, workers and local only). Each script
also runs as `python bench/NAME.py`, importing its siblings (`from testset import ...`) from its own folder.
"""
