mSELECT 1 --? not a comment
, ? -- a comment ?
