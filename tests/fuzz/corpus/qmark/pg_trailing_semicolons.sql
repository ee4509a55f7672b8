pINSERT INTO t VALUES (?); ;  -- done
