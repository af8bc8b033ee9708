"""`ledger bench ...`: each benchmark against its baseline in the same run, on throwaway stores."""
