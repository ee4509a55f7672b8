pSELECT 1 /* a /* nested ? */ still ? */ + ? -- ?
; SELECT 2