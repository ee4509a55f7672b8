mSELECT * FROM `t?` WHERE a = ? AND b = 'x\'?' # ?
