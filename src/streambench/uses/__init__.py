"""The three uses beyond a plain run: chaos (failover contract) and paired experiments."""
