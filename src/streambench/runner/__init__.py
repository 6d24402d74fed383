"""Running a matrix: cases (``cases``), the matrix of runs and one run end to end
(``matrix``), and where runs execute (``executors``, ``dask_executor``).

A run goes case -> replay plans (``streambench.replay``) -> SUT (``streambench.suts``) -> grading
(``streambench.grade``) -> one result row; ``streambench.report`` writes the rows out. Nothing is
imported here, so reading a case does not load pandas.
"""
