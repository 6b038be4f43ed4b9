"""Statistics: metrics, drift tests (KS, PSI, chi-square), bootstrap intervals, paired
intervals (DeLong), always-valid sequential tests (mSPRT) and the SRM check."""
