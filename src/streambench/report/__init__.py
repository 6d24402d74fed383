"""Reports of result rows: the report files, the CI gate."""
